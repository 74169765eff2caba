"""The ablations at ``gpu`` scale on a bare GPU machine, inside one command's time.

    bash benchmarks/gpu_carry.sh                         # here, once: -> .gpu_carry/
    bash benchmarks/gpu_experiments.sh --out "$OUT"      # there, from the repo root

Installs the carried wheels the machine lacks (as ``gpu_suite.sh`` does), then runs
``python -m experiments.run all --scale gpu --jobs N`` in ``--workdir`` for ``--budget``
seconds. Then it sends SIGTERM: every run in flight saves and stops, and each
experiment's ``results.md`` (what shows of its finding), ``results.csv`` and figure are
written from the runs finished so far. It copies to ``--out``: those reports, the
runs' logs, and each *finished* run's ``config.json``, ``metrics.jsonl`` and record
(its checkpoints stay behind: they would not fit the way back), plus
``gpu_experiments.json`` (device, command, runs finished). Copy ``--out``'s ``exp/``
to ``--workdir`` here and carry it with ``.gpu_carry`` to the next GPU machine: the same
command there skips the finished runs and trains the rest (the runs that were in flight
start again).

``--smoke`` proves it on a CPU (``JAX_PLATFORMS=cpu``) at toy size.
This driver needs only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import time

from gpu_suite import ensure_packages, machine_header, row_env

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE_SETS = ("num_epochs=1", "batch_size=16", "eval_batch_size=8",
              "model_options.width_multiplier=0.25", "checkpoint_every_steps=100")
# What a finished run keeps on the way back: enough to be skipped and reported.
RUN_FILES = ("config.json", "metrics.jsonl", "experiment_run.json")
REPORT_FILES = ("results.md", "results.csv", "curves.png", "scatter.png")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bash benchmarks/gpu_experiments.sh",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "runs" / "gpu_exp_out"))
    p.add_argument("--carry", default=str(REPO / ".gpu_carry"), help="gpu_carry.sh's folder")
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default: <carry>/tfds)")
    p.add_argument("--site", default="/tmp/resnet_flax_gpu_site",
                   help="where the carried wheels are installed")
    p.add_argument("--workdir", default=str(REPO / "runs" / "exp_gpu"),
                   help="the experiments' workdir (carried between machines)")
    p.add_argument("--compile-cache", default="/tmp/resnet_flax_gpu_experiments_cache",
                   help="the runs' shared persistent compilation cache")
    p.add_argument("--experiments", default="all", help="all, or one experiment's name")
    p.add_argument("--arms", default="", help="one experiment's arms, comma-separated "
                   "(default: every arm)")
    p.add_argument("--jobs", type=int, default=4, help="runs at once on the GPU")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--budget", type=float, default=450.0,
                   help="seconds of training before the runs are told to save and stop")
    p.add_argument("--grace", type=float, default=90.0,
                   help="seconds they have to save, stop and report (a run told to stop "
                        "while compiling stops after its first chunk of steps)")
    p.add_argument("--smoke", action="store_true", help="toy sizes, to prove it on a CPU")
    return p.parse_args(argv)


def experiments_command(args, data_dir: pathlib.Path) -> list[str]:
    workdir = pathlib.Path(args.workdir)  # Each experiment in a folder of its name.
    if args.experiments != "all":
        workdir = workdir / args.experiments
    command = [sys.executable, "-m", "experiments.run", args.experiments, "--scale", "gpu",
               "--jobs", str(args.jobs), "--seeds", str(args.seeds), "--data_dir",
               str(data_dir), "--workdir", str(workdir)]
    command += ["--arms", args.arms] if args.arms else []
    for item in SMOKE_SETS if args.smoke else ():
        command += ["--set", item]
    return command


def run_for(command: list[str], env: dict, budget: float, grace: float, log) -> int:
    """Runs ``command`` for ``budget`` seconds, then SIGTERM and ``grace`` seconds to
    stop (then SIGKILL); its exit status."""
    log.write(f"$ {shlex.join(command)}\n")
    log.flush()
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        return proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:  # Its runs too: each is a session of its own.
        subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False)
        proc.kill()
        return proc.wait()


def copy_back(workdir: pathlib.Path, out: pathlib.Path) -> dict[str, int]:
    """Reports, logs and finished runs' small files of ``workdir`` -> ``out``; returns
    {"finished": n, "unfinished": m} runs."""
    counts = {"finished": 0, "unfinished": 0}
    for record in sorted(workdir.glob("*/*/*/experiment_run.json")):
        run = record.parent
        if not json.loads(record.read_text()).get("finished"):
            counts["unfinished"] += 1
            continue
        counts["finished"] += 1
        target = out / run.relative_to(workdir)
        target.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (run / name).exists():
                shutil.copy2(run / name, target / name)
    for experiment in sorted(p for p in workdir.iterdir() if p.is_dir()):
        target = out / experiment.name
        target.mkdir(parents=True, exist_ok=True)
        for name in REPORT_FILES:
            if (experiment / name).exists():
                shutil.copy2(experiment / name, target / name)
        if (experiment / "logs").is_dir():
            shutil.copytree(experiment / "logs", target / "logs", dirs_exist_ok=True)
    return counts


def main(argv=None) -> int:
    args = parse_args(argv)
    out, workdir = pathlib.Path(args.out), pathlib.Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    carry = pathlib.Path(args.carry)
    data_dir = pathlib.Path(args.data_dir) if args.data_dir else carry / "tfds"
    with open(out / "gpu_experiments.log", "a") as log:
        installed = ensure_packages(carry / "wheels", pathlib.Path(args.site),
                                    lambda text: print(text, file=log, flush=True))
        env = row_env(pathlib.Path(args.site), args.smoke)
        # Packed runs share compiled programs: a seed's twin compiles nothing.
        env["RESNET_FLAX_COMPILE_CACHE"] = args.compile_cache
        command = experiments_command(args, data_dir)
        tic = time.perf_counter()
        status = run_for(command, env, args.budget, args.grace, log)
        seconds = time.perf_counter() - tic
    counts = copy_back(workdir, out / "exp")
    summary = {**machine_header("gpu_experiments.sh", argv, args.smoke, env, installed),
               "experiments_command": shlex.join(command), "exit_status": status,
               "seconds": round(seconds, 1), **counts}
    (out / "gpu_experiments.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"[gpu_experiments] exit {status} after {seconds:.0f} s: {counts['finished']} runs "
          f"finished, {counts['unfinished']} in flight; wrote {out}", flush=True)
    return 0 if status in (0, 128 + signal.SIGTERM) else 1


if __name__ == "__main__":
    sys.exit(main())
