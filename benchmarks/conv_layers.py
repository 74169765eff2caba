"""Per-layer convolution speed, JAX vs PyTorch: where a CPU train step's time goes.

    python benchmarks/conv_layers.py --models resnet20,resnet18 --rounds 3

Times every distinct convolution of the CIFAR ResNet-20 and CIFAR ResNet-18
train steps (batch 128, float32, NHWC / channels_last) three ways: forward,
weight gradient and input gradient, each on its own. JAX runs through the
project's convolution (``models/conv_impl.py``) with the trainer's XLA:CPU
flags (``host_devices``); PyTorch is 2.13 eager with channels_last. Each round
runs the JAX side and then the torch side in fresh subprocesses. Prints every
layer's GFLOP/s for both (``layer`` lines, JSON), then per model the summed
convolution time of one train step on each side (``model`` lines): each shape's
three directions times how often the model has it, with no input gradient for
the stem (its input is the data). Comparing that sum with the whole train step
of ``side_by_side.py`` shows how much of a step the convolutions alone take.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# (height, in channels, out channels, kernel, stride, count in the model).
LAYERS = {
    "resnet20": [
        (32, 3, 16, 3, 1, 1), (32, 16, 16, 3, 1, 6), (32, 16, 32, 3, 2, 1),
        (16, 32, 32, 3, 1, 5), (16, 32, 64, 3, 2, 1), (8, 64, 64, 3, 1, 5)],
    "resnet18": [
        (32, 3, 64, 3, 1, 1), (32, 64, 64, 3, 1, 4),
        (32, 64, 128, 3, 2, 1), (32, 64, 128, 1, 2, 1), (16, 128, 128, 3, 1, 3),
        (16, 128, 256, 3, 2, 1), (16, 128, 256, 1, 2, 1), (8, 256, 256, 3, 1, 3),
        (8, 256, 512, 3, 2, 1), (8, 256, 512, 1, 2, 1), (4, 512, 512, 3, 1, 3)],
}
DIRECTIONS = ("forward", "weight_grad", "input_grad")


def flops(batch: int, layer) -> float:
    height, cin, cout, k, stride, _ = layer
    out = height // stride
    return 2.0 * batch * out * out * cin * cout * k * k


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def jax_layer(layer, batch: int, repeats: int) -> dict:
    import jax

    from resnet_flax.models import conv_impl

    height, cin, cout, k, stride, _ = layer
    pad = ((k - 1) // 2,) * 2

    def conv(x, w):
        return conv_impl.conv_general_dilated(
            x, w, (stride, stride), (pad, pad), dimension_numbers=("NHWC", "HWIO", "NHWC"))

    x = jax.random.normal(jax.random.key(0), (batch, height, height, cin))
    w = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * 0.1
    forward = jax.jit(conv)
    g = forward(x, w)
    weight_grad = jax.jit(lambda x, g, w: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
    input_grad = jax.jit(lambda x, g, w: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
    fns = {"forward": lambda: forward(x, w), "weight_grad": lambda: weight_grad(x, g, w),
           "input_grad": lambda: input_grad(x, g, w)}
    return {d: median_seconds(lambda d=d: jax.block_until_ready(fns[d]()), repeats)
            for d in DIRECTIONS}


def torch_layer(layer, batch: int, repeats: int) -> dict:
    import torch

    height, cin, cout, k, stride, _ = layer
    conv = torch.nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False)
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.randn(batch, cin, height, height).to(memory_format=torch.channels_last)
    x.requires_grad_()
    y = conv(x)
    g = torch.randn_like(y)

    def forward():
        with torch.no_grad():
            conv(x)

    fns = {
        "forward": forward,
        "weight_grad": lambda: torch.autograd.grad(y, conv.weight, g, retain_graph=True),
        "input_grad": lambda: torch.autograd.grad(y, x, g, retain_graph=True),
    }
    return {d: median_seconds(fns[d], repeats) for d in DIRECTIONS}


def run_side(side: str, layers, batch: int, repeats: int) -> list[dict]:
    if side == "jax":
        from resnet_flax.cli import host_devices
        host_devices.eigen_convs()  # The trainer's XLA:CPU set-up, before JAX starts.
        host_devices.split_cpu(1)
        return [jax_layer(layer, batch, repeats) for layer in layers]
    return [torch_layer(layer, batch, repeats) for layer in layers]


def step_conv_seconds(layers, times) -> float:
    """One train step's convolution time: every direction, times each shape's count."""
    total = 0.0
    for i, (layer, t) in enumerate(zip(layers, times)):
        directions = DIRECTIONS if i else DIRECTIONS[:2]  # The stem needs no input grad.
        total += layer[-1] * sum(t[d] for d in directions)
    return total


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet20,resnet18")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per direction")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--side", choices=("jax", "torch"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    models = a.models.split(",")
    for model in models:
        if model not in LAYERS:
            raise SystemExit(f"--models: {model!r} is not one of {sorted(LAYERS)}")
    if a.side:  # Child process: one side, every model, one JSON line.
        print(json.dumps({m: run_side(a.side, LAYERS[m], a.batch, a.repeats) for m in models}))
        return

    runs: dict[str, list] = {"jax": [], "torch": []}
    for _ in range(a.rounds):
        for side in runs:
            cmd = [sys.executable, os.path.abspath(__file__), "--side", side,
                   "--models", a.models, "--batch", str(a.batch), "--repeats", str(a.repeats)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(f"{side} side failed:\n{out.stderr[-3000:]}")
            runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))

    def med(side, model, i, d):
        return statistics.median(r[model][i][d] for r in runs[side])

    for model in models:
        layers = LAYERS[model]
        for i, layer in enumerate(layers):
            row = {"model": model, "layer": dict(zip(
                ("height", "in", "out", "kernel", "stride", "count"), layer))}
            for d in DIRECTIONS:
                jax_s, torch_s = med("jax", model, i, d), med("torch", model, i, d)
                row[d] = {"jax_gflops": round(flops(a.batch, layer) / jax_s / 1e9, 1),
                          "torch_gflops": round(flops(a.batch, layer) / torch_s / 1e9, 1)}
            print("layer", json.dumps(row), flush=True)
        sums = {side: step_conv_seconds(layers, [
            {d: med(side, model, i, d) for d in DIRECTIONS} for i in range(len(layers))])
            for side in runs}
        print("model", json.dumps({
            "model": model, "batch": a.batch, "rounds": a.rounds,
            "jax_conv_ms_per_step": round(sums["jax"] * 1e3, 1),
            "torch_conv_ms_per_step": round(sums["torch"] * 1e3, 1),
            "ratio_torch_over_jax": round(sums["torch"] / sums["jax"], 3),
            "date": time.strftime("%Y-%m-%d %H:%M"), "loadavg": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
