"""``--launch slurm``: an experiment's grid as one SLURM job array and a report job.

Each task of the array (``--array=0-<runs - 1>``) runs one arm x seed as an ordinary
resumable run in its own workdir, the one the local launcher uses: the same command with
``--task $SLURM_ARRAY_TASK_ID``. The array is submitted with ``--requeue``: a pre-empted
task saves, is requeued and resumes. A second job, held until every task has succeeded
(``--dependency=afterok``), runs the same command without ``--task``: every run is then
done and skipped, and it writes the report. Both jobs get the ``--sbatch`` options;
scripts, logs and a list of the tasks go to ``<workdir>/slurm/``.
"""

from __future__ import annotations

import argparse
import pathlib
import shlex
import shutil
import subprocess

from experiments.grid import Run
from experiments.pack import command


class LaunchError(Exception):
    """The jobs could not be submitted; the message says why."""


def _sbatch(options: list) -> str:
    """Submits; returns the job id."""
    try:
        proc = subprocess.run(["sbatch", "--parsable", *map(str, options)],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LaunchError(f"sbatch failed: {e}") from None
    if proc.returncode:
        raise LaunchError(f"sbatch failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip().split(";")[0]


def submit(args: argparse.Namespace, runs: list[Run], workdir: pathlib.Path,
           sbatch_options: str = "") -> tuple[str, str]:
    """Submits the array (one task per run) and the report job after it; returns their
    job ids."""
    if shutil.which("sbatch") is None:
        raise LaunchError("--launch slurm needs SLURM's sbatch on PATH")
    try:
        extra = shlex.split(sbatch_options)
    except ValueError as e:
        raise LaunchError(f"--sbatch {sbatch_options!r}: {e}") from None
    folder = workdir.resolve() / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    local = shlex.join(command(args, args.name, workdir.resolve()))
    (folder / "array.sh").write_text(
        f"#!/bin/bash\nexec {local} --task \"$SLURM_ARRAY_TASK_ID\"\n")
    (folder / "report.sh").write_text(f"#!/bin/bash\nexec {local}\n")
    (folder / "tasks.txt").write_text("".join(
        f"{i} {r.arm} seed {r.seed} {r.workdir.resolve()}\n" for i, r in enumerate(runs)))
    name = f"exp_{args.name}"
    array = _sbatch([f"--array=0-{len(runs) - 1}", f"--job-name={name}", "--requeue",
                     "--open-mode=append", f"--output={folder}/task_%a.log", *extra,
                     folder / "array.sh"])
    report = _sbatch([f"--dependency=afterok:{array}", "--kill-on-invalid-dep=yes",
                      f"--job-name={name}_report", f"--output={folder}/report.log", *extra,
                      folder / "report.sh"])
    return array, report
