"""SIGTERM or Ctrl-C during a command that writes its results only when it has them
(evaluation, predict, export): one line and the status 128 + the signal's number, as a
stopped training run gives.

The signal handler raises ``Signalled`` where the main thread is, unless that would
leave a library half-done: inside Orbax or asyncio (an event loop being built, run or
closed) the exception would escape ``run_until_complete`` with its tasks pending, and
Python would print "coroutine ... was never awaited" and "Task was destroyed but it is
pending!" at exit. There the signal waits until the main thread has left them (the rest of a
checkpoint's read) and is then sent again. A
``Signalled`` raised where Python cannot raise (a garbage-collection callback, a
``__del__``) is sent again the same way instead of being printed and lost.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Modules a raised Signalled would leave half-done (their loops' tasks left pending).
_UNINTERRUPTIBLE = ("asyncio.", "orbax.")
_POLL_SECONDS = 0.005


class Signalled(BaseException):
    """SIGTERM or SIGINT arrived (a BaseException: no library's ``except Exception``
    swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _uninterruptible(frame) -> bool:
    """Whether ``frame`` or a frame that called it is Orbax's or asyncio's code."""
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_UNINTERRUPTIBLE):
            return True
        frame = frame.f_back
    return False


class _Handler:
    """The handler of ``STOP_SIGNALS`` while a command runs, and the thread that sends a
    deferred signal again (started up front: a thread started inside a handler could
    wait on a lock of ``threading`` that the interrupted main thread holds)."""

    def __init__(self):
        self.deferred, self.done, self.wake = None, False, threading.Event()
        self.thread = threading.Thread(target=self._send_when_safe, daemon=True)
        self.thread.start()

    def __call__(self, signum, frame):
        if self.done:  # The command has finished: nothing left to stop.
            return
        if self.deferred is None and _uninterruptible(frame):
            self.defer(signum)
            return
        raise Signalled(signum)  # A second Ctrl-C while one waits: at once.

    def defer(self, signum: int) -> None:
        if self.deferred is None:
            self.deferred = signum
            self.wake.set()

    def _send_when_safe(self) -> None:
        main = threading.main_thread().ident
        while self.wake.wait() and not self.done:
            signum = self.deferred
            if signum is None or _uninterruptible(sys._current_frames().get(main)):
                time.sleep(_POLL_SECONDS)
                continue
            self.deferred = None
            signal.pthread_kill(main, signum)

    def stop(self) -> None:
        self.done = True
        self.wake.set()
        self.thread.join()

    def unraisable(self, previous):
        """A ``sys.unraisablehook`` that sends a swallowed ``Signalled`` again."""
        def hook(unraisable):
            if isinstance(unraisable.exc_value, Signalled):
                self.defer(unraisable.exc_value.signum)
            else:
                previous(unraisable)
        return hook


@contextlib.contextmanager
def stops_on_signals(what: str):
    """SIGTERM or SIGINT during ``what`` ends it with one line and the status 128 + the
    signal's number. A signal still waiting when ``what`` ends is dropped: it finished."""
    handler, previous, hook = _Handler(), {}, sys.unraisablehook
    if threading.current_thread() is threading.main_thread():  # Else Python refuses.
        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
        sys.unraisablehook = handler.unraisable(hook)
    try:
        yield
    except Signalled as e:
        handler.done = True  # A second signal now would cut the line short.
        print(f"{what} stopped by {signal.Signals(e.signum).name} before it finished; run "
              "it again to finish", file=sys.stderr, flush=True)
        raise SystemExit(128 + e.signum) from None
    finally:
        handler.stop()
        sys.unraisablehook = hook
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)
