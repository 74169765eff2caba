"""One run per workdir: an OS file lock taken before anything is written.

The lock is ``fcntl.flock`` on ``<workdir>/.run.lock`` (through ``filelock``), which the
OS releases when the process ends however it ends, so a killed run never blocks its own
resume. Beside it, ``.run.owner`` names the holder for the message a second run prints;
both files go when the run ends (a killed run's stay, and the next run takes them over).
Evaluation and ``predict`` only read a workdir and take no lock.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import time

import filelock

LOCK, OWNER = ".run.lock", ".run.owner"


class WorkdirError(RuntimeError):
    """A workdir a run cannot use; the message names it, the cause and what to do."""


class WorkdirInUse(WorkdirError):
    """Another run holds the workdir."""


@contextlib.contextmanager
def held(workdir: pathlib.Path, active: bool = True):
    """Holds ``workdir``'s lock for the block (``active=False``: a process that is not
    the run's first, whose process 0 holds it for all of them)."""
    if not active:
        yield
        return
    lock = filelock.FileLock(workdir / LOCK, timeout=0)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        (workdir / OWNER).write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
    except filelock.Timeout:
        raise WorkdirInUse(f"{workdir} is in use by another run ({_owner(workdir)}): wait "
                           "for it to end, or give another --workdir") from None
    except OSError as e:  # Read-only, full, or a path that is a file: before any work.
        lock.release()
        raise WorkdirError(f"cannot write the workdir {workdir}: {e.strerror or e}; give a "
                           "folder this process can write") from None
    try:
        yield
    finally:
        # The files go while the lock is still held: a run that starts now makes new ones,
        # and a workdir is left as the run found it, or as its work made it.
        with contextlib.suppress(OSError):
            for name in (OWNER, LOCK):
                (workdir / name).unlink(missing_ok=True)
        lock.release()


def _owner(workdir: pathlib.Path, wait_s: float = 1.0) -> str:
    """The holder's record; a holder that took the lock a moment ago writes it right
    after, so an absent or empty one is read again for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(OSError):
            if found := (workdir / OWNER).read_text().strip():
                return found
        if time.monotonic() >= deadline:
            return "its owner is not recorded"
        time.sleep(0.02)
