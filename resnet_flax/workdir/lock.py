"""One run per workdir: an OS file lock taken before anything is written.

The lock is ``fcntl.flock`` on ``<workdir>/.run.lock`` (through ``filelock``), which the
OS releases when the process ends however it ends, so a killed run never blocks its own
resume. Beside it, ``.run.owner`` names the holder for the message a second run prints.
Evaluation and ``predict`` only read a workdir and take no lock.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket

import filelock

LOCK, OWNER = ".run.lock", ".run.owner"


class WorkdirInUse(RuntimeError):
    """Another run holds the workdir; the message names it and what to do."""


@contextlib.contextmanager
def held(workdir: pathlib.Path, active: bool = True):
    """Holds ``workdir``'s lock for the block (``active=False``: a process that is not
    the run's first, whose process 0 holds it for all of them)."""
    if not active:
        yield
        return
    workdir.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(workdir / LOCK, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise WorkdirInUse(f"{workdir} is in use by another run ({_owner(workdir)}): wait "
                           "for it to end, or give another --workdir") from None
    try:
        (workdir / OWNER).write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        yield
    finally:
        lock.release()
        _tidy(workdir)


def _tidy(workdir: pathlib.Path) -> None:
    """Removes the lock's files from a workdir the run left otherwise empty (it stopped
    before writing anything), so that nothing is left of it."""
    with contextlib.suppress(OSError):
        if set(os.listdir(workdir)) <= {LOCK, OWNER}:
            for name in (OWNER, LOCK):
                (workdir / name).unlink(missing_ok=True)


def _owner(workdir: pathlib.Path) -> str:
    try:
        return (workdir / OWNER).read_text().strip() or "its owner is not recorded"
    except OSError:
        return "its owner is not recorded"
