"""Export a trained run, or pretrained weights, for use outside this project.

    python -m resnet_flax.export --workdir runs/fm_cpu --output exported/fm
        [--checkpoint latest|best|STEP] [--formats stablehlo,weights] [--overwrite]
    python -m resnet_flax.export --weights resnet50.tv2_in1k --output exported/r50

Writes into the new folder ``--output``: ``model.stablehlo`` (``jax.export``, a symbolic
batch, CPU and CUDA), ``weights/`` (the Hugging Face Hub's layout: ``huggingface-cli
upload OWNER/REPO exported/fm/weights``) and ``export.json`` (the input the function
takes, class names, where it came from, and each format's measured difference from the
model). Each format is checked against the model before the folder appears.
"""

from __future__ import annotations

import sys
import time

from resnet_flax import cli
from resnet_flax.cli import setup


def parse_args(argv=None):
    from resnet_flax.export import FORMATS

    p = cli.ArgumentParser(prog="python -m resnet_flax.export",
                           description=__doc__.split("\n\n")[0])
    cli.add_model_source(p)
    p.add_argument("--output", required=True, help="the folder to write (must not exist)")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"comma-separated, of {', '.join(FORMATS)}")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    args = p.parse_args(argv)
    problem = cli.checkpoint_choice_problem(args.checkpoint)
    if problem:
        p.error(problem)
    args.formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = [f for f in args.formats if f not in FORMATS]
    if unknown or not args.formats:
        p.error(f"--formats {','.join(args.formats)!r}: each must be one of "
                f"{', '.join(FORMATS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    with cli.stops_on_signals("export"):
        return _export(args)


def _export(args) -> int:
    setup.start()
    from resnet_flax import export

    start = time.perf_counter()
    try:
        written = export.export_model(
            args.output, workdir=args.workdir, weights=args.weights, model=args.model,
            checkpoint=args.checkpoint, formats=args.formats, overwrite=args.overwrite)
    except export.ExportError as e:
        cli.fail(str(e))
    for fmt, path in written.items():
        print(f"{fmt}: {path}")
    print(f"exported in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
