"""``--jobs N``: several runs at once on one machine, each in a process of its own.

A ResNet-20 step at the experiments' batch of 128 leaves a GPU mostly idle, so several
runs share it: each child process is the ordinary one-run command (``--task I``), with
``XLA_PYTHON_CLIENT_MEM_FRACTION`` its share of the GPU's memory. Runs are taken seed by
seed (every arm's seed 0 first), so that an interrupted grid has the most arms to
compare. A signal to this process (SIGTERM, SIGINT, SIGUSR1) goes to every running
child, which saves and stops as a lone run does; no new run starts, and the same command
resumes. A run that fails on a mistake (exit status 2: a dataset not built, say) has its
one ``error:`` line printed, and no further run starts. Each run's output goes to
``<experiment workdir>/logs/<arm>_seed_<s>.log``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time

from experiments.grid import Run
from resnet_flax.run import preemption

# Of the GPU's memory, what the children share (the rest: the CUDA contexts' own).
MEMORY_SHARE = 0.9


def command(args: argparse.Namespace, name: str, workdir: pathlib.Path) -> list[str]:
    """The one-experiment ``python -m experiments.run`` command of ``args`` (no launch
    options) for experiment ``name`` in ``workdir``."""
    out = [sys.executable, "-m", "experiments.run", name, "--dataset", args.dataset,
           "--scale", args.scale, "--seeds", str(args.seeds), "--workdir", str(workdir)]
    if args.data_dir:
        out += ["--data_dir", str(pathlib.Path(args.data_dir).expanduser().resolve())]
    if args.arms:
        out += ["--arms", args.arms]
    for item in args.set:
        out += ["--set", item]
    return out


@dataclasses.dataclass(frozen=True)
class Task:
    """Run ``index`` of experiment ``name``'s grid, whose workdir is ``workdir``."""

    name: str
    index: int
    run: Run
    workdir: pathlib.Path

    @property
    def log(self) -> pathlib.Path:
        return self.workdir / "logs" / f"{self.run.arm}_seed_{self.run.seed}.log"


def seed_by_seed(tasks: list[Task]) -> list[Task]:
    """Every experiment's and arm's seed 0 first, then seed 1, ... (a stable order)."""
    return sorted(tasks, key=lambda t: t.run.seed)


class _Children:
    """The running children; a signal to this process is passed on to each of them."""

    def __init__(self):
        self.running: dict[subprocess.Popen, Task] = {}
        self.signum = None

    def forward(self, signum, frame) -> None:
        self.signum = self.signum or signum
        for child in self.running:
            child.send_signal(signum)


def run_all(args: argparse.Namespace, tasks: list[Task], jobs: int) -> int:
    """Trains ``tasks``, ``jobs`` at a time; the exit status: 0, a stop's 128 + signal
    (the same command resumes), or the first failure's."""
    env = {**os.environ, "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{MEMORY_SHARE / jobs:.3f}"}
    children, queue, status = _Children(), seed_by_seed(tasks), 0
    previous = {s: signal.signal(s, children.forward) for s in preemption.SIGNALS}
    try:
        while children.running or (queue and children.signum is None and status != 2):
            while (queue and len(children.running) < jobs and children.signum is None
                   and status != 2):  # 2: a mistake every run would make; start no more.
                task = queue.pop(0)
                task.log.parent.mkdir(parents=True, exist_ok=True)
                with open(task.log, "a") as log:  # The child keeps its own copy open.
                    child = subprocess.Popen(
                        [*command(args, task.name, task.workdir), "--task", str(task.index)],
                        stdout=log, stderr=subprocess.STDOUT, env=env,
                        start_new_session=True)  # A terminal's Ctrl-C reaches us alone.
                children.running[child] = task
                print(f"{task.name} {task.run.arm} seed {task.run.seed}: started "
                      f"(log: {task.log})", file=sys.stderr, flush=True)
            time.sleep(0.2)
            for child in [c for c in children.running if c.poll() is not None]:
                task = children.running.pop(child)
                ended = _reported(task, child.returncode, repeat=status == 2)
                status = status or ended
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return final_status(status, children.signum, len(queue))


def final_status(status: int, signum: int | None, left: int) -> int:
    """The grid's exit status: a run's failure or stop first; else, where a signal left
    runs unstarted, 128 + its number (the same command trains them); else 0."""
    if status or signum is None or not left:
        return status
    return 128 + signum


def _reported(task: Task, returncode: int, repeat: bool = False) -> int:
    """Says how a child ended; its status, unless it finished (0). ``repeat``: a mistake
    was already printed (the runs in flight fail on it too)."""
    where = f"{task.name} {task.run.arm} seed {task.run.seed}"
    if returncode == 0:
        print(f"{where}: finished", file=sys.stderr, flush=True)
        return 0
    if returncode < 0:
        print(f"{where}: killed by {signal.Signals(-returncode).name}; the same command "
              "resumes it from its last checkpoint", file=sys.stderr, flush=True)
        return 128 - returncode
    if returncode > 128:
        print(f"{where}: stopped by {signal.Signals(returncode - 128).name}; the same "
              "command resumes it", file=sys.stderr, flush=True)
        return returncode
    if repeat and returncode == 2:
        print(f"{where}: stopped on the same mistake", file=sys.stderr, flush=True)
        return returncode
    errors = [line for line in task.log.read_text().splitlines() if line.startswith("error:")]
    print(errors[-1] if returncode == 2 and errors else
          f"{where}: failed with exit status {returncode}; its log: {task.log}",
          file=sys.stderr, flush=True)
    return returncode
