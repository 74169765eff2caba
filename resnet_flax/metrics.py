"""Where metrics go: TensorBoard event files, metrics.jsonl, and the console."""

from __future__ import annotations

import json
import pathlib
import sys
import time

import tensorboardX


class MetricWriter:
    """Writes one scalar dict per epoch to TensorBoard and to ``metrics.jsonl``.

    tensorboardX writes real TensorBoard event files without TensorFlow. On
    resume the JSONL file is appended to, so it holds the whole run's history.
    In a multi-process run only process 0 writes (``active=False`` elsewhere).
    """

    def __init__(self, workdir: str, active: bool = True):
        self.active = active
        if not active:
            return
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._tb = tensorboardX.SummaryWriter(str(self.workdir / "tensorboard"))
        self._jsonl = open(self.workdir / "metrics.jsonl", "a", encoding="utf-8")

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.active:
            return
        for name, value in scalars.items():
            self._tb.add_scalar(name, value, step)
        self._tb.flush()
        record = {"step": step, "time": time.time(), **scalars}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def close(self) -> None:
        if not self.active:
            return
        self._tb.close()
        self._jsonl.close()


def console(epoch: int, num_epochs: int, scalars: dict[str, float]) -> None:
    """One line per epoch on stderr, beside the progress bar."""
    parts = " ".join(f"{k}={v:.4g}" for k, v in scalars.items())
    print(f"epoch {epoch}/{num_epochs}: {parts}", file=sys.stderr, flush=True)
