"""Third-party console lines that tell a user nothing, silenced in one place.

Each entry is a message seen on our own runs that is neither a problem nor
actionable here; warnings that are real stay on. ``--verbosity=1`` on ``main``
(or ``RESNET_FLAX_VERBOSE=1`` for any command) leaves everything as it was.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile

VERBOSE_ENV = "RESNET_FLAX_VERBOSE"

# absl-logged lines, matched by their start.
_ABSL_NOISE = (
    # TFDS, on every run: PIL decodes these datasets' PNGs fine.
    "OpenCV is not installed",
    # TFDS, while a dataset is being built (the version folder is not yet complete).
    "Variant folder ",
    # Orbax, for a manager opened read-only on purpose (evaluation).
    "Given directory is read only",
    # Orbax, for a mid-epoch save while tracking the best epoch (only epochs have metrics).
    "Requested `tracked_metric`; did not provide metrics",
    # Orbax, resuming after a kill mid-save: it removes the unfinished step's folder.
    "Attempted to create temporary directory",
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# TensorFlow's native start-up lines, written to fd 2 before its log level applies
# (TF_CPP_MIN_LOG_LEVEL no longer hides them): INFO lines ("I0000 00:00:... port.cc:153]
# oneDNN custom operations are on", cpu_feature_guard's), the continuation of the
# latter, and absl's note that logging is not initialised.
_NATIVE_NOISE = re.compile(
    r"I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] |To enable the following instructions: "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called")


# Orbax's writing threads log, with tracebacks, the error they raise to the caller (who
# reports it in one line).
_ABSL_RAISED = ("_SignalingThread.run() raised an exception", "in background save thread",
                "Save Finalize thread (save_finalize) failed")


def _keep(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not (any(message.startswith(prefix) for prefix in _ABSL_NOISE)
                or any(raised in message for raised in _ABSL_RAISED))


def silence_third_party() -> None:
    """Drops the absl-logged lines above from this process's log, and what Orbax's failed
    writes print once their save has been reported (below)."""
    if verbose():
        return
    from absl import logging as absl_logging

    logger = absl_logging.get_absl_logger()
    if _keep not in logger.filters:
        logger.addFilter(_keep)
    asyncio_logger = logging.getLogger("asyncio")
    if _keep_asyncio not in asyncio_logger.filters:
        asyncio_logger.addFilter(_keep_asyncio)
    if not getattr(sys.unraisablehook, "drops_closed_loop", False):
        sys.unraisablehook = _without_closed_loop(sys.unraisablehook)


# After a save the storage refused (reported in one line), TensorStore's writes still in
# flight complete into Orbax's closed event loop, one traceback each, and asyncio logs the
# failed write tasks and gathers nobody awaits any more. Orbax is the only user of asyncio
# here, and it raises its errors to its caller as well.
def _keep_asyncio(record: logging.LogRecord) -> bool:
    return "exception was never retrieved" not in record.getMessage()


def _without_closed_loop(default):
    def hook(unraisable) -> None:
        if not (isinstance(unraisable.exc_value, RuntimeError)
                and str(unraisable.exc_value) == "Event loop is closed"):
            default(unraisable)

    hook.drops_closed_loop = True
    return hook


# CPython before 3.13 registers shared memory that a process merely attaches to with its
# resource tracker (python/cpython#82300), which then calls the batches Grain's workers
# hand over "leaked" at exit, and removes them itself: nothing leaks.
_TRACKER_NOISE = "ignore:resource_tracker:UserWarning"


def silence_worker_processes() -> None:
    """The same for processes this one starts from now on (Grain's workers and the
    resource tracker read ``PYTHONWARNINGS``)."""
    if verbose():
        return
    current = os.environ.get("PYTHONWARNINGS", "")
    if _TRACKER_NOISE not in current:
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (current, _TRACKER_NOISE)))


@contextlib.contextmanager
def offline_build():
    """Around a TFDS build from local archives: no download bars, no size banners.

    TFDS draws its download progress bars (with rates in the hundreds of TB/s for a
    local copy) and prints "Downloading and preparing dataset Unknown size" even
    when nothing is downloaded; the caller says what is built and where instead.
    """
    if verbose():
        yield
        return
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.utils import tqdm_utils

    was_active = getattr(tqdm_utils, "_active", True)  # TFDS has no public getter.
    tfds.display_progress_bar(False)
    try:
        with contextlib.redirect_stdout(io.StringIO()), _native_noise_dropped():
            # Whole, now: TFDS's lazy import otherwise finishes loading TensorFlow's
            # native libraries later (even at exit), outside this block.
            import tensorflow  # noqa: F401
            yield
    finally:
        tfds.display_progress_bar(was_active)


@contextlib.contextmanager
def _native_noise_dropped():
    """Captures fd 2 (native code writes there directly) and passes on all but the noise.

    What is kept reaches stderr when the block ends, an error's text included.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            kept = [ln for ln in text.splitlines(keepends=True) if not _NATIVE_NOISE.match(ln)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
