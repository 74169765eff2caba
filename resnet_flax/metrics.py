"""Where metrics go: TensorBoard event files, metrics.jsonl, and the console."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import tensorboardX


class MetricWriter:
    """Writes one scalar dict per epoch to TensorBoard and to ``metrics.jsonl``.

    tensorboardX writes real TensorBoard event files without TensorFlow. On
    resume from ``resume_step`` the JSONL file keeps its rows up to that step and
    is appended to, and TensorBoard is told to hide its points past it (a run that
    died after writing an epoch but before checkpointing it would otherwise show that
    epoch twice). In a multi-process run only process 0 writes (``active=False``).
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
        self._tb = tensorboardX.SummaryWriter(str(self.workdir / "tensorboard"),
                                              purge_step=resume_step + 1)
        self._jsonl = open(path, "a", encoding="utf-8")

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


def _drop_rows_after(path: pathlib.Path, step: int) -> None:
    """Rewrites ``path`` without its rows past ``step`` (atomically), if it has any."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step]
    if len(kept) != len(lines):
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, path)


def console(epoch: int, num_epochs: int, scalars: dict[str, float]) -> None:
    """One line per epoch on stderr, beside the progress bar."""
    parts = " ".join(f"{k}={v:.4g}" for k, v in scalars.items())
    print(f"epoch {epoch}/{num_epochs}: {parts}", file=sys.stderr, flush=True)
