"""What does the per-step non-finite check cost? Training time with the loop's check
(each step reads the non-finite count of the step ``FINITE_CHECK_LAG`` before it, so a
diverging run stops within that many steps) against the same run checked only at the
epoch's end and at saves, in interleaved rounds.

    python benchmarks/finite_check_cost.py --rounds 3 --subset 6400

Trains ``configs/fashion_mnist_cpu.py`` for one epoch on ``--subset`` training images
(built Fashion-MNIST in ``--data_dir``) in a fresh process per run, and prints one JSON
line per arm with the median ``train_seconds`` (time in train steps, compilation apart),
every round's figure, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
# The main command with the loop's check lag set first: 8 (as shipped) or never per step.
_RUN = ("import sys; from resnet_flax.run import train_loop; "
        "train_loop.FINITE_CHECK_LAG = int(sys.argv.pop(1)); "
        "from resnet_flax.cli.main import run; run()")
ARMS = {"checked every step": 8, "epoch end and saves only": 10**9}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--subset", type=int, default=6400, help="training images per run")
    p.add_argument("--data_dir", default="", help="TFDS folder (default: TFDS's)")
    return p.parse_args(argv)


def train_seconds(lag: int, args, workdir: pathlib.Path) -> float:
    shutil.rmtree(workdir, ignore_errors=True)
    command = [sys.executable, "-c", _RUN, str(lag), "--config",
               str(REPO / "configs" / "fashion_mnist_cpu.py"), "--workdir", str(workdir),
               "--config.num_epochs=1", f"--config.train_subset={args.subset}",
               "--config.progress_bar=False", "--config.allow_download=False",
               "--config.checkpoint_every_steps=100000"]
    if args.data_dir:
        command.append(f"--config.data_dir={args.data_dir}")
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    if proc.returncode:
        sys.exit(proc.stderr[-2000:])
    row = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    return row["train_seconds"]


def main(argv=None) -> None:
    args = parse_args(argv)
    figures = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for arm, lag in ARMS.items():
                seconds = train_seconds(lag, args, pathlib.Path(tmp) / "run")
                figures[arm].append(seconds)
                print(f"round {round_ + 1}: {arm}: {seconds:.2f} s", file=sys.stderr)
    medians = {arm: statistics.median(values) for arm, values in figures.items()}
    for arm, values in figures.items():
        print(json.dumps({"arm": arm, "lag": ARMS[arm], "median_train_seconds": medians[arm],
                          "rounds": values}))
    checked, unchecked = medians.values()
    print(json.dumps({"checked_over_unchecked": checked / unchecked}))


if __name__ == "__main__":
    main()
