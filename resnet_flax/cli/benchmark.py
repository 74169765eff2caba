r"""``python -m resnet_flax.benchmark``: train-step throughput of a model, as one JSON line.

    python -m resnet_flax.benchmark --model resnet20 --batch 128 --steps 50
    python -m resnet_flax.benchmark --model resnet18 --stem cifar --batch 128 --steps 20 \
        --data on-device --loop dispatch

What is timed and reported: ``resnet_flax.speed.throughput``. stdout holds only the JSON
line; each stage (building, compiling, timing) is announced on stderr as it starts.
"""

from __future__ import annotations

import argparse
import json
import sys

from resnet_flax.cli import setup
from resnet_flax.speed import throughput


def parse_args(argv=None) -> argparse.Namespace:
    from resnet_flax import cli

    p = cli.ArgumentParser(
        prog="python -m resnet_flax.benchmark", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet20", help="a registered model name")
    p.add_argument("--stem", default=None, choices=("imagenet", "imagenet_s2d", "deep", "cifar"),
                   help="override the model's stem (resnet18 --stem cifar: the CIFAR ResNet-18; "
                        "imagenet_s2d: the 7x7/2 conv rewritten on space-to-depth input)")
    p.add_argument("--input-channels", type=int, default=None,
                   help="channels of the synthetic input (4: RGB padded to 4, as MLPerf's "
                        "NHWC ResNet-50; default: the model's)")
    p.add_argument("--image-size", type=int, default=None,
                   help="input height = width (default: the model's; 32 with --stem cifar)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="default: the model's; 10 with --stem cifar")
    p.add_argument("--batch", type=int, default=128, help="global batch size")
    p.add_argument("--steps", type=int, default=50, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after compiling")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="compute dtype (parameters stay float32)")
    p.add_argument("--parallelism", default="jit", choices=("jit", "pmap"))
    p.add_argument("--devices", type=int, default=None,
                   help="devices to use (CPU: virtual devices to split into, default "
                        "host_devices.default_count(); accelerators: default all)")
    p.add_argument("--data", default="synthetic", choices=("synthetic", "on-device"))
    p.add_argument("--dataset-size", type=int, default=None,
                   help="examples in the on-device split (default 50000 up to 64 px, else "
                        "32 batches)")
    p.add_argument("--loop", default="step", choices=("step", "dispatch"),
                   help="one call per step, or --steps-per-dispatch steps per call in "
                        "training's own loop (config.steps_per_dispatch)")
    p.add_argument("--steps-per-dispatch", type=int, default=10,
                   help="steps per call with --loop dispatch")
    p.add_argument("--cpu-convs", default="eigen", choices=setup.CPU_CONVS,
                   help="XLA:CPU convolution library: Eigen (main.py's default, see "
                   "host_devices.eigen_convs) or this jaxlib's default (YNNPACK)")
    p.add_argument("--no-compile-cache", action="store_true",
                   help="do not use the persistent compilation cache")
    p.add_argument("--width-multiplier", type=float, default=None,
                   help="scale the model's widths (fashion_mnist_resnet 0.5: the CPU recipes' net)")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="after timing, trace --profile-steps more steps with jax.profiler into "
                        "DIR and add the top ops by time to the JSON")
    p.add_argument("--profile-steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if min(args.batch, args.steps, args.steps_per_dispatch, args.profile_steps) < 1 \
            or args.warmup < 0:
        p.error("--batch, --steps, --steps-per-dispatch and --profile-steps must be >= 1, "
                "--warmup >= 0")
    return args


def _progress(message: str) -> None:
    """What the benchmark is doing, on stderr: stdout holds only the JSON line."""
    print(f"benchmark: {message}", file=sys.stderr, flush=True)


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup.start(args.devices, args.cpu_convs, cache=not args.no_compile_cache)
    from resnet_flax import cli, models

    try:
        models.spec(args.model)
    except ValueError as e:  # A typo: one line, with the closest names.
        cli.fail(f"--model: {e}")
    result = throughput.run(args, progress=_progress)
    print(json.dumps(result), flush=True)  # The only line on stdout.
    return result


if __name__ == "__main__":
    main()
