"""JAX vs PyTorch train-step throughput, interleaved, on the same machine and moment.

    python benchmarks/side_by_side.py --models resnet20,resnet18 --batch 128 --rounds 3

Each round runs, per model, ``python -m resnet_flax.benchmark`` and then
``benchmarks/torch_reference.py`` in fresh subprocesses, one after the other,
so background load hits both alike. Prints every run's JSON line (prefixed
``run``), then per model the median images/s of each side over the rounds and
the ratio jax / torch (``summary`` lines, JSON). ``resnet18`` means the CIFAR
ResNet-18 on both sides (``--stem cifar`` for JAX). Extra benchmark flags go
after ``--jax-args`` (e.g. ``--jax-args="--devices 4"``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(cmd: list[str], env=None) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def jax_cmd(model: str, a) -> list[str]:
    cmd = [sys.executable, "-m", "resnet_flax.benchmark", "--model", model,
           "--batch", str(a.batch), "--steps", str(a.steps), "--warmup", str(a.warmup)]
    if model == "resnet18":
        cmd += ["--stem", "cifar"]
    return cmd + shlex.split(a.jax_args)


def torch_cmd(model: str, a) -> list[str]:
    return [sys.executable, os.path.join(HERE, "torch_reference.py"), "--model", model,
            "--batch", str(a.batch), "--steps", str(a.steps), "--warmup", str(a.warmup),
            *shlex.split(a.torch_args)]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet20,resnet18")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jax-args", default="", help="extra flags for resnet_flax.benchmark")
    p.add_argument("--torch-args", default="", help="extra flags for torch_reference.py")
    p.add_argument("--torch-first", action="store_true", help="run torch before jax each round")
    a = p.parse_args(argv)

    results: dict[str, dict[str, list[float]]] = {}
    for r in range(a.rounds):
        for model in a.models.split(","):
            sides = [("jax", jax_cmd(model, a)), ("torch", torch_cmd(model, a))]
            if a.torch_first:
                sides.reverse()
            for side, cmd in sides:
                res = _run(cmd)
                ips = res["images_per_sec"]
                results.setdefault(model, {}).setdefault(side, []).append(ips)
                print("run", json.dumps({"round": r, "side": side, "model": model,
                                         "cmd": shlex.join(cmd), "result": res}), flush=True)
    summary = {}
    for model, sides in results.items():
        jax_med, torch_med = statistics.median(sides["jax"]), statistics.median(sides["torch"])
        summary[model] = {
            "model": model, "batch": a.batch, "rounds": a.rounds,
            "jax_images_per_sec": sides["jax"], "torch_images_per_sec": sides["torch"],
            "jax_median": jax_med, "torch_median": torch_med, "ratio": jax_med / torch_med,
            "jax_args": a.jax_args, "date": time.strftime("%Y-%m-%d %H:%M"),
            "loadavg": os.getloadavg(),
        }
        print("summary", json.dumps(summary[model]), flush=True)
    return summary


if __name__ == "__main__":
    main()
