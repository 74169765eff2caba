"""Runs an experiment's grid: finished runs are skipped, interrupted ones resumed (the
training loop resumes exactly), a run whose arm changed is set aside and rerun, and a run
another experiment already finished with the same config is copied, not trained again."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import sys
import time

from experiments.grid import Run
from resnet_flax.workdir import resume_guard

RECORD = "experiment_run.json"  # Per run: its config, wall time, whether it finished.
# What a twin's copy takes: the files a committed record keeps (never checkpoints).
RECORD_FILES = (RECORD, resume_guard.CONFIG_FILE, resume_guard.CHANGES_FILE,
                resume_guard.DEVICES_FILE, "metrics.jsonl")


def _record(run: Run) -> dict:
    path = run.workdir / RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def finished(run: Run) -> bool:
    """Whether ``run`` trained its whole schedule (or diverged: a finding too)."""
    record = _record(run)
    return bool(record.get("finished")) and record.get("num_epochs") == run.config.num_epochs


def status(run: Run) -> str:
    """``done``, ``resume`` (same config, unfinished), ``changed`` or ``new``."""
    found = resume_guard.compare(run.config, run.workdir)
    if found is None:
        return "new"
    if found.refused:  # Whatever allow_config_change says: the arm is another run now.
        return "changed"
    return "done" if finished(run) else "resume"


def twin(run: Run) -> pathlib.Path | None:
    """A finished run in another experiment's workdir (``run.peers``) with this run's seed
    and a config that trains alike: an arm two experiments share trains once."""
    for peer in run.peers:
        for workdir in sorted(peer.glob(f"*/seed_{run.seed}")):
            found = resume_guard.compare(run.config, workdir)
            if (found is not None and not found.refused
                    and finished(dataclasses.replace(run, workdir=workdir))):
                return workdir
    return None


def copy_twin(run: Run, source: pathlib.Path) -> None:
    """Copies ``source``'s record into ``run.workdir``, naming where it trained
    (``same_as``, relative, so a clone elsewhere reads it too)."""
    run.workdir.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, run.workdir / name)
    record = _record(run)
    record.setdefault("same_as", os.path.relpath(source, run.workdir))
    (run.workdir / RECORD).write_text(json.dumps(record, indent=1) + "\n")


def _set_aside(workdir: pathlib.Path) -> pathlib.Path:
    """Moves a run whose arm changed out of the way (never deleted)."""
    n = 1
    while (aside := workdir.with_name(f"{workdir.name}.replaced_{n}")).exists():
        n += 1
    workdir.rename(aside)
    return aside


def execute(run: Run, train_fn) -> None:
    """Trains (or resumes) ``run`` with ``train_fn(config, workdir)``, adding its wall time
    to the run's record."""
    state = status(run)
    if state == "done":
        print(f"{run.arm} seed {run.seed}: done, skipped", file=sys.stderr, flush=True)
        return
    if state == "new" and (source := twin(run)) is not None:
        copy_twin(run, source)
        print(f"{run.arm} seed {run.seed}: the same run as {source}, copied",
              file=sys.stderr, flush=True)
        return
    if state == "changed":
        aside = _set_aside(run.workdir)
        print(f"{run.arm} seed {run.seed}: its config changed; the old run is in {aside}",
              file=sys.stderr, flush=True)
    print(f"{run.arm} seed {run.seed}: {'resuming' if state == 'resume' else 'training'} "
          f"in {run.workdir}", file=sys.stderr, flush=True)
    run.workdir.mkdir(parents=True, exist_ok=True)
    before = _record(run).get("wall_seconds", 0.0) if state == "resume" else 0.0
    tic, finished, diverged = time.perf_counter(), False, ""
    try:
        train_fn(run.config, str(run.workdir))
        finished = True
    except FloatingPointError as e:  # A finding (no normalisation, say), not a crash.
        finished, diverged = True, str(e)
        print(f"{run.arm} seed {run.seed}: diverged: {e}", file=sys.stderr, flush=True)
    finally:  # An interrupted run's time counts too.
        record = {"wall_seconds": before + time.perf_counter() - tic, "finished": finished,
                  "num_epochs": run.config.num_epochs, "diverged": diverged}
        (run.workdir / RECORD).write_text(json.dumps(record, indent=1) + "\n")
