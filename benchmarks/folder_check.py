"""What comparing a folder with its build costs at the start of a run
(``resnet_flax/data/folder_changes.py``): the walk of the class folders and a stat of
every image file, then the comparison with the build's record of them.

    python benchmarks/folder_check.py                     # 100,000 files in 100 classes
    python benchmarks/folder_check.py --files 10000 --classes 10

Writes empty ``.png`` files (the check reads no pixels) into a temporary folder, records
them as a build does, and times the check ``--rounds`` times with the page cache warm
(the usual case: the folder was read by its build or a recent run). Prints one JSON
line: seconds per check (median, min, max) and per 10,000 files.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import tempfile
import time

from resnet_flax.data import folder_changes, folders


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    return p.parse_args(argv)


def write_folder(root: pathlib.Path, files: int, classes: int) -> None:
    for i in range(files):
        folder = root / f"class_{i % classes:04d}"
        if i < classes:
            folder.mkdir(parents=True)
        (folder / f"{i:07d}.png").touch()


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp) / "images"
        write_folder(root, args.files, args.classes)
        rule = {"holdout": 0.1, "seed": 0}
        recorded = folders.listing(root, folder_changes.current_files(root, rule))
        times = []
        for _ in range(args.rounds):
            tic = time.perf_counter()
            found = folder_changes.compare(recorded, folders.listing(
                root, folder_changes.current_files(root, rule)))
            times.append(time.perf_counter() - tic)
        assert not found, found
    median = statistics.median(times)
    print(json.dumps({"files": args.files, "classes": args.classes,
                      "seconds_median": round(median, 3), "seconds_min": round(min(times), 3),
                      "seconds_max": round(max(times), 3),
                      "seconds_per_10000_files": round(median * 10_000 / args.files, 4)}))


if __name__ == "__main__":
    main()
