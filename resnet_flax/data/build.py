"""Builds a TFDS dataset from original archives, offline.

    python -m resnet_flax.data.build fashion_mnist --archives ../shared/data/fashion_mnist

writes the normal TFDS dataset (array_record) under --data_dir (default: TFDS's,
$TFDS_DATA_DIR or ~/tensorflow_datasets). TFDS checks every archive's checksum.
Without --archives it uses <data_dir>/downloads/manual, or downloads if online.
"""

from __future__ import annotations

import argparse
import sys

from resnet_flax.data import datasets, tfds_source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(datasets.SPECS))
    parser.add_argument("--archives", help="folder holding the original archive files")
    parser.add_argument("--data_dir", help="TFDS data directory to build into")
    args = parser.parse_args(argv)
    try:
        builder = tfds_source.prepare(args.dataset, args.data_dir, archives=args.archives)
    except tfds_source.DatasetUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    splits = ", ".join(f"{k}: {v.num_examples}" for k, v in sorted(builder.info.splits.items()))
    print(f"{args.dataset} ready in {builder.data_dir} ({splits})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
