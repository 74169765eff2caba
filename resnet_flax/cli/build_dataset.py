"""Builds a dataset offline: a TFDS dataset from its original archives, or a folder of
your own images.

    python -m resnet_flax.data.build fashion_mnist --archives ../shared/data/fashion_mnist
    python -m resnet_flax.data.build folder:/data/flowers [--holdout 0.1 --seed 0]

writes the normal TFDS dataset (array_record) under --data_dir (default: TFDS's,
$TFDS_DATA_DIR or ~/tensorflow_datasets). TFDS checks every archive's checksum.
Without --archives it uses <data_dir>/downloads/manual, or downloads if online.
A folder (``folder:PATH``: one subfolder per class, or train/ and val/ of them) is
built with its class names; each unreadable image is one line, skipped and counted.
A mistake (an unknown dataset, a missing folder or file, a damaged archive, a
data_dir that cannot be written) is one ``error: ...`` line with exit status 2
(``RESNET_FLAX_VERBOSE=1``: the traceback, and TFDS's and TensorFlow's own output).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from resnet_flax import cli, quiet
from resnet_flax.cli import setup


def parse_args(argv: list[str] | None):
    from resnet_flax.data import datasets, folders
    from resnet_flax.suggest import closest

    parser = cli.ArgumentParser(prog="python -m resnet_flax.data.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help=f"one of {', '.join(sorted(datasets.SPECS))}, "
                        f"or {datasets.FOLDER_PREFIX}PATH for a folder of images")
    parser.add_argument("--archives", help="folder holding the original archive files")
    parser.add_argument("--data_dir", help="TFDS data directory to build into")
    folder = parser.add_argument_group(f"a {datasets.FOLDER_PREFIX}PATH dataset")
    folder.add_argument("--holdout", type=float, default=0.1,
                        help="share of each class held out for testing, when the folder "
                        "has no train/ and val/ (or test/) inside")
    folder.add_argument("--seed", type=int, default=0, help="seed of the hold-out draw")
    folder.add_argument("--store", choices=folders.STORES, default="original",
                        help="images as they are, or resized (--shorter) as JPEG or raw "
                        "pixels (decode-free: the fastest input, the largest files)")
    folder.add_argument("--shorter", type=int, default=0,
                        help="with --store jpeg|raw: the shorter side images are resized to")
    folder.add_argument("--quality", type=int, default=90, help="with --store jpeg")
    folder.add_argument("--overwrite", action="store_true", help="build a built folder again")
    folder.add_argument("--workers", type=int, default=0, help="processes (0: every core)")
    args = parser.parse_args(argv)
    if not datasets.is_folder(args.dataset) and args.dataset not in datasets.SPECS:
        cli.fail(f"unknown dataset {args.dataset!r}: valid are {', '.join(sorted(datasets.SPECS))}"
                 f" or {datasets.FOLDER_PREFIX}PATH{closest(args.dataset, datasets.SPECS)}")
    if (args.store == "original") != (args.shorter == 0) or args.shorter < 0:
        cli.fail(f"--store {args.store} --shorter {args.shorter}: --store jpeg or raw needs "
                 "--shorter N > 0 (the size images are stored at); original takes no --shorter")
    if args.archives is not None and not pathlib.Path(args.archives).expanduser().is_dir():
        cli.fail(f"--archives {args.archives}: no such folder")
    if args.data_dir is not None and pathlib.Path(args.data_dir).expanduser().is_file():
        cli.fail(f"--data_dir {args.data_dir} is a file; give a folder (it is created if new)")
    return args


def build_folder(args) -> None:
    """Builds a ``folder:PATH`` dataset and says what it holds and what it skipped."""
    from resnet_flax.data import datasets, folders

    target = datasets.folder_store(args.dataset, args.data_dir)
    print(f"building {args.dataset} into {target} ...", flush=True)
    tic = time.perf_counter()
    store = folders.Store(args.store, args.shorter, args.quality)
    made = folders.build(args.dataset, args.data_dir, holdout=args.holdout, seed=args.seed,
                         store=store, overwrite=args.overwrite, workers=args.workers,
                         log=lambda line: print(line, file=sys.stderr), progress=True)
    h, w, c = made["image_shape"]
    size = f"{h}x{w}x{c}" if h else f"varying size, {c} channel{'s' * (c > 1)}"
    splits = ", ".join(f"{k}: {v}" for k, v in made["splits"].items())
    print(f"{args.dataset} ready: {len(made['classes'])} classes, {splits} images ({size}); "
          f"{len(made['skipped'])} unreadable file{'s' * (len(made['skipped']) != 1)} "
          f"skipped; {time.perf_counter() - tic:.0f} s")
    print(f"train on it with --config.dataset={datasets.FOLDER_PREFIX}"
          f"{datasets.folder_path(args.dataset)}"
          + (f" --config.data_dir={args.data_dir}" if args.data_dir else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup.start()  # Before TFDS starts TensorFlow.
    from resnet_flax.data import datasets, folders, tfds_source

    root = tfds_source.data_root(args.data_dir)
    try:
        if datasets.is_folder(args.dataset):
            build_folder(args)
            return 0
        print(f"building {args.dataset} into {root} ...", flush=True)
        tic = time.perf_counter()
        builder = tfds_source.prepare(args.dataset, args.data_dir, archives=args.archives)
    except (tfds_source.DatasetUnavailable, folders.FolderError, OSError) as e:
        if quiet.verbose():  # RESNET_FLAX_VERBOSE=1: the traceback, as it was.
            raise
        if not isinstance(e, OSError):
            cli.fail(str(e))
        # A data_dir that cannot be written, a full disk.
        cli.fail(f"cannot write the dataset under {root}: {e.strerror or e}")
    splits = ", ".join(f"{k}: {v.num_examples}" for k, v in sorted(builder.info.splits.items()))
    print(f"{args.dataset} ready in {builder.data_dir} ({splits}; "
          f"{time.perf_counter() - tic:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
