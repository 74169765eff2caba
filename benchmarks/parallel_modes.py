"""Train-step images/s of ``--parallelism jit`` against ``pmap`` on 1, 2 and 8 virtual
CPU devices, rounds interleaved, one process per figure (the device split is fixed
when JAX starts).

    python benchmarks/parallel_modes.py --model resnet20 --devices 1,2,8 --rounds 3

Prints one JSON line per run and then a Markdown table of the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def one_run(model: str, parallelism: str, devices: int, args) -> float:
    cmd = [sys.executable, "-m", "resnet_flax.benchmark", "--model", model,
           "--parallelism", parallelism, "--devices", str(devices), "--batch", str(args.batch),
           "--steps", str(args.steps), "--data", "on-device"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(json.dumps({k: result[k] for k in ("model", "parallelism", "devices",
                                              "images_per_sec", "compile_s")}), flush=True)
    return result["images_per_sec"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--devices", default="1,2,8")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args(argv)
    counts = [int(d) for d in args.devices.split(",")]
    figures = {(mode, n): [] for n in counts for mode in ("jit", "pmap")}
    for _ in range(args.rounds):
        for n in counts:
            for mode in ("jit", "pmap"):
                figures[mode, n].append(one_run(args.model, mode, n, args))
    print(f"\n| devices | jit img/s | pmap img/s | pmap / jit | ({args.model}, batch "
          f"{args.batch}, median of {args.rounds}) |\n|---|---|---|---|---|")
    for n in counts:
        jit, pmap = (statistics.median(figures[m, n]) for m in ("jit", "pmap"))
        print(f"| {n} | {jit:.1f} | {pmap:.1f} | {pmap / jit:.2f} | |")


if __name__ == "__main__":
    main()
