"""Stopping a run on a signal without losing work.

A scheduler pre-empts with SIGTERM (then SIGKILL after a grace period), SLURM's
``#SBATCH --signal=USR1@90`` sends SIGUSR1 ahead of the time limit, a user presses
Ctrl-C (SIGINT). ``Stop`` only records the signal; the loop finishes the step it is in,
saves a checkpoint of that step, waits for it to be on disk and raises ``Stopped``,
which the commands report in one line and exit with 128 + the signal's number. A second
Ctrl-C stops at once. Several processes agree on the step to stop at.
"""

from __future__ import annotations

import signal
import threading

import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
# Several processes compare their signals every this many checks (a host collective).
AGREE_EVERY = 10


class Stopped(Exception):
    """The run stopped on a signal after saving a checkpoint of ``step``."""

    def __init__(self, signum: int, step: int, directory):
        self.signum, self.step = signum, step
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}: "
                         f"checkpoint {step} saved in {directory}; run the same command "
                         "to resume")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class Stop:
    """A context that turns ``SIGNALS`` into a request the loop polls (``requested``)."""

    def __init__(self, processes: int = 1):
        self.signum, self._processes, self._checks, self._previous = None, processes, 0, {}

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():  # Else Python refuses.
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _record(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # A second Ctrl-C: at once.
        self.signum = self.signum or signum

    def requested(self) -> bool:
        """Whether to stop now. Every process must call it at the same points."""
        if self._processes == 1:
            return self.signum is not None
        self._checks += 1
        if self._checks % AGREE_EVERY:
            return False
        from jax.experimental import multihost_utils

        signals = multihost_utils.process_allgather(np.int32(self.signum or 0))
        received = [int(s) for s in np.ravel(signals) if s]
        self.signum = self.signum or (received[0] if received else None)
        return bool(received)
