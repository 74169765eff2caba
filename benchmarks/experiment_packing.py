"""Do packed runs (``--jobs N``) finish an experiment sooner? Its wall time for each N.

    python benchmarks/experiment_packing.py --jobs 1,2,4 --experiment shortcuts \
        --epochs 2 --data-dir .gpu_carry/tfds --out runs/packing

Runs ``python -m experiments.run EXPERIMENT --scale gpu --seeds S --jobs N --set
num_epochs=E`` in a fresh workdir for each N (``--jobs 1``: every run in one process,
one after another; N > 1: N one-run processes at a time, sharing the device and a
compilation cache), and prints the wall time of the whole grid, start-up and
compilation included: what an experiment costs. Writes ``packing.md`` and
``packing.json`` to ``--out``. The other way to train seeds at once, one vmapped step,
is ``benchmarks/vmap_seeds.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="shortcuts")
    p.add_argument("--jobs", default="1,2,4", help="comma-separated values of --jobs")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--arms", default="", help="comma-separated arms (default: every arm)")
    p.add_argument("--data-dir", default="", help="TFDS data dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="more overrides for every run (e.g. a toy size on a CPU)")
    p.add_argument("--out", default=str(REPO / "runs" / "packing"))
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per grid")
    return p.parse_args(argv)


def grid_seconds(args, jobs: int, workdir: pathlib.Path) -> tuple[float, int, int]:
    """(wall seconds, runs finished, exit status) of the grid with ``--jobs jobs``."""
    shutil.rmtree(workdir, ignore_errors=True)
    command = [sys.executable, "-m", "experiments.run", args.experiment, "--scale", "gpu",
               "--seeds", str(args.seeds), "--jobs", str(jobs), "--workdir", str(workdir),
               "--set", f"num_epochs={args.epochs}"]
    command += ["--data_dir", args.data_dir] if args.data_dir else []
    command += ["--arms", args.arms] if args.arms else []
    for item in args.set:
        command += ["--set", item]
    env = {**os.environ, "RESNET_FLAX_COMPILE_CACHE": str(workdir / ".compile_cache")}
    tic = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=args.timeout)
    seconds = time.perf_counter() - tic
    records = [json.loads(p.read_text()) for p in workdir.glob("*/*/experiment_run.json")]
    return seconds, sum(bool(r.get("finished")) for r in records), proc.returncode


def main(argv=None) -> int:
    args = parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for jobs in (int(j) for j in args.jobs.split(",")):
        seconds, finished, status = grid_seconds(args, jobs, out / f"jobs_{jobs}")
        rows.append({"jobs": jobs, "seconds": round(seconds, 1), "finished": finished,
                     "exit_status": status})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["seconds"]
    lines = [f"| --jobs | wall s | runs finished | x --jobs {rows[0]['jobs']} |",
             "|---|---|---|---|"]
    lines += [f"| {r['jobs']} | {r['seconds']:.1f} | {r['finished']} | "
              f"{base / r['seconds']:.2f} |" for r in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    (out / "packing.md").write_text(f"`{args.experiment}`, gpu scale, {args.epochs} epochs, "
                                    f"{args.seeds} seeds\n\n{table}")
    (out / "packing.json").write_text(json.dumps({"args": vars(args), "rows": rows},
                                                 indent=1) + "\n")
    return 0 if all(r["exit_status"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
