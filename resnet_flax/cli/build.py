"""Builds a TFDS dataset from original archives, offline.

    python -m resnet_flax.data.build fashion_mnist --archives ../shared/data/fashion_mnist

writes the normal TFDS dataset (array_record) under --data_dir (default: TFDS's,
$TFDS_DATA_DIR or ~/tensorflow_datasets). TFDS checks every archive's checksum.
Without --archives it uses <data_dir>/downloads/manual, or downloads if online.
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
    from resnet_flax.data import datasets

    parser = cli.ArgumentParser(prog="python -m resnet_flax.data.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(datasets.SPECS))
    parser.add_argument("--archives", help="folder holding the original archive files")
    parser.add_argument("--data_dir", help="TFDS data directory to build into")
    args = parser.parse_args(argv)
    if args.archives is not None and not pathlib.Path(args.archives).expanduser().is_dir():
        cli.fail(f"--archives {args.archives}: no such folder")
    if args.data_dir is not None and pathlib.Path(args.data_dir).expanduser().is_file():
        cli.fail(f"--data_dir {args.data_dir} is a file; give a folder (it is created if new)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup.start()  # Before TFDS starts TensorFlow.
    from resnet_flax.data import tfds_source

    root = tfds_source.data_root(args.data_dir)
    print(f"building {args.dataset} into {root} ...", flush=True)
    tic = time.perf_counter()
    try:
        builder = tfds_source.prepare(args.dataset, args.data_dir, archives=args.archives)
    except (tfds_source.DatasetUnavailable, OSError) as e:
        if quiet.verbose():  # RESNET_FLAX_VERBOSE=1: the traceback, as it was.
            raise
        if isinstance(e, tfds_source.DatasetUnavailable):
            cli.fail(str(e))
        # A data_dir that cannot be written, a full disk.
        cli.fail(f"cannot write the dataset under {root}: {e.strerror or e}")
    splits = ", ".join(f"{k}: {v.num_examples}" for k, v in sorted(builder.info.splits.items()))
    print(f"{args.dataset} ready in {builder.data_dir} ({splits}; "
          f"{time.perf_counter() - tic:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
