"""Where metrics go: TensorBoard event files, metrics.jsonl, and the console."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sys
import time


@contextlib.contextmanager
def _torch_unimportable():
    """tensorboardX's package imports torch where it is installed (seconds at every start:
    BENCHMARKS.md, "Start-up"), only so that its SummaryWriter takes torch tensors; its
    event writer, all that is used here, needs none of it. Left alone once something has
    imported torch."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # `import torch` raises ImportError.
    try:
        yield
    finally:
        del sys.modules["torch"]


with _torch_unimportable():
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    from tensorboardX.summary import scalar


class EventFile:
    """A TensorBoard event file written and flushed in the caller's thread.

    tensorboardX's ``SummaryWriter`` queues events for a writer thread, and its
    ``flush()`` flushes the file but not the queue: a run killed after an epoch had
    "flushed" could lose that epoch's points. Here each ``write`` is in the file
    (the OS's buffers) when it returns. ``purge_step`` is TensorBoard's marker
    that hides the points a killed run wrote past its restored checkpoint.
    """

    def __init__(self, logdir: pathlib.Path, purge_step: int | None = None):
        logdir.mkdir(parents=True, exist_ok=True)
        # Names start with the second; the suffix keeps a resume within the same
        # second from reusing a name, and sorts files in the order they were written.
        self._events = EventsWriter(str(logdir / "events"), f".{time.time_ns()}")
        if purge_step is not None:
            self._events.write_event(Event(step=purge_step, file_version="brain.Event:2"))
            self._events.write_event(
                Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
        self._events.flush()

    def write(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self._events.write_event(
                Event(wall_time=time.time(), step=step, summary=scalar(name, value)))
        self._events.flush()

    def close(self) -> None:
        self._events.close()


# Drawing curves.png after every epoch is a large share of a short run's time; at most
# every 30 s keeps it small (BENCHMARKS.md, "A short run's saves and curves").
CURVES_EVERY_S = 30.0


class MetricWriter:
    """Writes one scalar dict per epoch to TensorBoard and to ``metrics.jsonl``, and
    redraws ``curves.png`` (loss, accuracy, learning rate per epoch) after an epoch when
    ``CURVES_EVERY_S`` have passed since it was last drawn, and at the end of the run.

    Both are in their files when ``write`` returns (before the epoch's console
    line). On resume from ``resume_step`` the JSONL file keeps its rows up to that
    step and is appended to, and TensorBoard is told to hide its points past it (a
    run that died after writing an epoch but before checkpointing it would otherwise
    show that epoch twice). In a multi-process run only process 0 writes
    (``active=False``).
    """

    def __init__(self, workdir: str, active: bool = True, resume_step: int = 0):
        self.active = active
        if not active:
            return
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "metrics.jsonl"
        if path.exists():  # Rows past the restored step are redone: drop them.
            _drop_rows_after(path, resume_step)
        self._tb = EventFile(self.workdir / "tensorboard", purge_step=resume_step + 1)
        self._jsonl = open(path, "a", encoding="utf-8")
        self._curves_drawn_at, self._curves_behind = time.monotonic(), False

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.active:
            return
        self._tb.write(step, scalars)
        record = {"step": step, "time": time.time(), **scalars}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if "epoch" in scalars:
            self._curves_behind = True
            if time.monotonic() - self._curves_drawn_at >= CURVES_EVERY_S:
                self._plot_curves()

    def _plot_curves(self) -> None:
        """``curves.png`` from every epoch row so far (resumed runs' included)."""
        from resnet_flax.workdir import plots

        rows = [r for r in read_rows(self.workdir / "metrics.jsonl")
                if "epoch" in r and "learning_rate" in r]
        figure = self.workdir / "curves.png"
        try:
            if rows:
                plots.training_curves(rows, figure, title=self.workdir.name)
        except OSError as e:  # A full disk, say: the figure waits, the run goes on.
            figure.with_suffix(".tmp.png").unlink(missing_ok=True)
            print(f"warning: {figure} not redrawn ({e.strerror or e}); training goes on",
                  file=sys.stderr, flush=True)
        self._curves_drawn_at, self._curves_behind = time.monotonic(), False

    def close(self) -> None:
        if not self.active:
            return
        if self._curves_behind:
            self._plot_curves()
        self._tb.close()
        self._jsonl.close()


def read_rows(path: pathlib.Path) -> list[dict]:
    """The rows of a ``metrics.jsonl``, without a torn one (what a short write leaves)."""
    return [row for row in map(_row, path.read_text(encoding="utf-8").splitlines())
            if row is not None]


def _row(line: str) -> dict | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def set_aside_torn(path: pathlib.Path, consequence: str) -> list[str]:
    """The whole rows of a JSON-lines file; a torn one (what a short write leaves) is
    appended to ``<path>.torn``, with one ``warning:`` line, and the file rewritten
    without it, atomically. Set aside, not lost."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    torn = [ln for ln in lines if _row(ln) is None]
    kept = [ln for ln in lines if _row(ln) is not None]
    if torn:
        aside = path.with_name(path.name + ".torn")
        with open(aside, "a", encoding="utf-8") as f:
            f.write("".join(ln if ln.endswith("\n") else ln + "\n" for ln in torn))
        write_whole(path, "".join(kept))
        print(f"warning: {path} had a torn row (a short write); set aside in {aside}"
              f"{consequence}", file=sys.stderr, flush=True)
    return kept


def write_whole(path: pathlib.Path, text: str) -> None:
    """``text`` into ``path`` whole or not at all: a temporary file, then a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _drop_rows_after(path: pathlib.Path, step: int) -> None:
    """Rewrites ``path`` without its rows past ``step`` and without a torn row (their
    epochs are trained again), atomically, if it has any."""
    lines = set_aside_torn(path, ", its epoch is trained again")
    kept = [ln for ln in lines if _row(ln).get("step", 0) <= step]
    if len(kept) != len(lines):
        write_whole(path, "".join(kept))


def console(epoch: int, num_epochs: int, scalars: dict[str, float]) -> None:
    """One line per epoch on stderr, beside the progress bar."""
    parts = " ".join(f"{k}={v:.4g}" for k, v in scalars.items())
    print(f"epoch {epoch}/{num_epochs}: {parts}", file=sys.stderr, flush=True)


def console_start(workdir: pathlib.Path, start: int, total: int, steps_per_epoch: int) -> None:
    """Where a run begins, when it does not begin at step 0: resumed, or already done."""
    if start >= total:
        epochs = total // steps_per_epoch
        print(f"{workdir} has finished its {epochs} epoch{'s' * (epochs != 1)} ({total:,} "
              "steps): its final model is evaluated below; a larger --config.num_epochs "
              "trains on", file=sys.stderr, flush=True)
    elif start:
        print(f"resuming {workdir} from step {start:,} of {total:,} (epoch "
              f"{start // steps_per_epoch + 1})", file=sys.stderr, flush=True)


def console_end(workdir: pathlib.Path, summary: dict, seconds: float,
                metric: str = "test_accuracy") -> None:
    """The run's closing line: its final (and best) test accuracy, time, and outputs."""
    rows = [r for r in read_rows(workdir / "metrics.jsonl") if metric in r]
    best = max(rows, key=lambda r: r[metric], default=None)
    final = summary.get(metric)
    parts = [f"final {metric} {final:.4f}" if final is not None else "no test metrics"]
    if best is not None and len(rows) > 1:
        parts.append(f"best {best[metric]:.4f} at epoch {best.get('epoch', '?')}")
    print(f"done in {seconds:.0f} s: {', '.join(parts)}; metrics.jsonl, curves.png and "
          f"checkpoints/ are in {workdir}", file=sys.stderr, flush=True)
