"""What a failed restore leaves behind: its abandoned reads are waited for, their filters
installed once a process."""

import asyncio
import logging
import sys
import threading
import time

from resnet_flax.workdir import restore_errors


def test_the_wait_ends_when_the_abandoned_reads_do():
    loop = asyncio.new_event_loop()
    reads = [loop.create_future()]  # A read still in flight when its loop closed.
    loop.close()
    ended = threading.Timer(0.3, reads.clear)  # TensorStore ends it: its future is freed.
    ended.start()
    tic = time.monotonic()
    restore_errors.await_abandoned_reads()
    assert not reads and 0.3 <= time.monotonic() - tic < 5  # Not the 10 s limit.


def test_a_read_that_never_ends_stops_the_wait_at_its_limit():
    loop = asyncio.new_event_loop()
    read = loop.create_future()
    loop.close()
    tic = time.monotonic()
    restore_errors.await_abandoned_reads(limit_s=0.2)
    assert 0.2 <= time.monotonic() - tic < 5 and not read.done()


def test_the_filters_are_installed_once(monkeypatch):
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # Put back afterwards.
    asyncio_logger = logging.getLogger("asyncio")
    monkeypatch.setattr(asyncio_logger, "filters", list(asyncio_logger.filters))
    restore_errors.await_abandoned_reads()
    hook = sys.unraisablehook
    restore_errors.await_abandoned_reads()
    assert sys.unraisablehook is hook and hook.drops_abandoned_reads
    assert asyncio_logger.filters.count(restore_errors._not_an_abandoned_read) == 1
