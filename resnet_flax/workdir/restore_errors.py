"""What a failed Orbax restore prints, kept off the user's terminal.

A restore that fails on a corrupt step prints hundreds of lines (each abandoned array
read's traceback, from several threads) straight to stderr, burying the one line that
says what happened. ``checkpoint`` runs its restores in ``captured``, waits for the
abandoned reads to end (``await_abandoned_reads``), and keeps the text beside the step
it moves aside, or passes it on (``replay``) when nothing failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pathlib
import sys
import time


@contextlib.contextmanager
def captured(path: pathlib.Path):
    """Sends file descriptor 2 (native code writes there too) to ``path`` for the block;
    the caller disposes of the file. If the block raises, the text is passed on to stderr.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    except BaseException:
        _restore_fd(saved)
        replay(path)
        raise
    _restore_fd(saved)


_ABANDONED_READ = "Encountered error while reading array index"
# A read's callback arriving after its event loop closed (seen once in CI, in-process).
_LATE_CALLBACK = "Event loop is closed"


def _not_an_abandoned_read(record: logging.LogRecord) -> bool:
    return _ABANDONED_READ not in record.getMessage() and (
        record.exc_info is None or _ABANDONED_READ not in str(record.exc_info[1]))


def _silence_abandoned_reads() -> None:
    """Drops what Orbax's failed reads report later (at garbage collection, or when the
    event loop runs next): asyncio's "never retrieved" logs and "Exception ignored"
    lines about its read coroutines. Everything else still reaches the user.

    Installed once a process, and kept: the reports can come at any later time. The
    hook is installed again if something has replaced it since (pytest does)."""
    asyncio_logger = logging.getLogger("asyncio")
    if _not_an_abandoned_read not in asyncio_logger.filters:
        asyncio_logger.addFilter(_not_an_abandoned_read)
    if getattr(sys.unraisablehook, "drops_abandoned_reads", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        if not any(t in str(unraisable.exc_value) for t in (_ABANDONED_READ, _LATE_CALLBACK)):
            previous(unraisable)

    hook.drops_abandoned_reads = True
    sys.unraisablehook = hook


def await_abandoned_reads(limit_s: float = 10.0) -> None:
    """Returns once the reads a failed restore abandoned have ended, so that what they
    report lands in the captured stderr, not on the user's terminal.

    Orbax's restore returns at its first failed read and closes its event loop; each read
    still in flight is a future of that closed loop, pending until TensorStore completes
    it (then TensorStore prints a traceback, and the future is freed and reports). The
    limit only guards against a read that never ends."""
    _silence_abandoned_reads()
    deadline = time.monotonic() + limit_s
    while True:
        gc.collect()  # Frees the ended reads' futures, which report as they go.
        if not _pending_on_closed_loops() or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _pending_on_closed_loops() -> bool:
    # type(), not isinstance: a proxy's __class__ may raise when looked up.
    return any(issubclass(type(o), asyncio.Future) and not o.done()
               and o.get_loop().is_closed() for o in gc.get_objects())


def _restore_fd(saved: int) -> None:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def replay(path: pathlib.Path) -> None:
    """Passes captured text on to stderr (nothing of a good restore is hidden)."""
    text = path.read_text(errors="replace")
    path.unlink()
    if text:
        sys.stderr.write(text)
        sys.stderr.flush()
