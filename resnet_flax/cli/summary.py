"""``python -m resnet_flax.summary``: a model's per-layer table, or the zoo's."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from resnet_flax import cli, models
from resnet_flax.cli import setup
from resnet_flax.models.layer_table import summarize, zoo_table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, checked (a model name it does not know: the closest ones)."""
    parser = cli.ArgumentParser(prog="python -m resnet_flax.summary",
                                description="Per-layer model summary: shapes, parameters, MACs.")
    parser.add_argument("--model", help=f"a registered model name (--zoo lists all "
                                        f"{len(models.names())}; each also as plain_<name>)")
    parser.add_argument("--zoo", action="store_true",
                        help="print a markdown table of every registered model instead")
    parser.add_argument("--pretrained", action="store_true",
                        help="print the pretrained ImageNet weights known by name instead")
    parser.add_argument("--image-size", type=int, default=None,
                        help="square input side (default: the model's natural input)")
    parser.add_argument("--channels", type=int, default=None)
    parser.add_argument("--num-classes", type=int, default=None)
    args = parser.parse_args(argv)
    if args.zoo or args.pretrained:
        return args
    if not args.model:
        parser.error("--model (or --zoo, or --pretrained) is required")
    for flag in ("image_size", "channels", "num_classes"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} {value}: must be a positive integer")
    try:
        models.spec(args.model)
    except ValueError as e:
        cli.fail(f"--model: {e}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    setup.start()
    if args.zoo:
        print(zoo_table())
        return
    if args.pretrained:
        from resnet_flax.pretrained.catalogue import table

        print(table())
        return
    h, w, c = models.spec(args.model).input_shape
    if args.image_size:
        h = w = args.image_size
    summary = summarize(args.model, (h, w, args.channels or c), num_classes=args.num_classes)
    print(summary.table())

if __name__ == "__main__":
    main()
