"""Orbax checkpoints of the train state: periodic saves, resume from the latest good one.

Saves are atomic (Orbax writes to a temporary folder and renames), so a crash
mid-save leaves the previous checkpoint as the latest. A state with a non-finite
parameter, BatchNorm statistic or optimizer moment is never saved, and each save
carries a SHA-256 digest of its arrays (``integrity``). On resume each step, newest
first, must hold the model's arrays (else: ``CheckpointError``, this workdir holds
another model), read back, be finite and match its digest; a step that fails is
reported in one line and moved to ``<workdir>/checkpoints_corrupt/``, never deleted,
and the previous step is tried.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import pathlib
import re
import shutil
import sys
import tempfile

import jax
import numpy as np
import orbax.checkpoint as ocp

from resnet_flax.train.state import TrainState
from resnet_flax.train.steps import DIVERGED_CAUSES
from resnet_flax.workdir import integrity, restore_errors

_FIELDS = ("step", "params", "batch_stats", "opt_state", "ema")
CORRUPT_DIR = "checkpoints_corrupt"


# What the storage says when it refuses a write (in the text of Orbax's errors).
_STORAGE_FAILURE = re.compile(
    r"No space left on device|Disk quota exceeded|Read-only file system|Permission denied")


class CheckpointError(RuntimeError):
    """No checkpoint of this workdir can be resumed; the message says why and what to do."""


class _Corrupt(Exception):
    """One step's files do not read back as the state that was saved."""


def has_checkpoints(workdir: str | os.PathLike) -> bool:
    """Whether ``workdir`` holds a saved step (without creating ``checkpoints/``)."""
    directory = pathlib.Path(workdir) / "checkpoints"
    return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


@functools.cache  # Once per process: the handler is Orbax's global registration.
def _write_replicated_arrays_whole() -> None:
    """In one process, each replicated array is written from one device, whole.

    Orbax's default off GPU (replica-parallel saving) slices every replicated array into
    a part per device for each replica to write; in one process the same process writes
    every part, so the slicing is time spent for nothing (BENCHMARKS.md, "A short run's
    saves and curves"). Across processes it spreads the writing over the hosts, so there
    it stays on. The files are the same."""
    if jax.process_count() > 1:
        return
    absl = logging.getLogger("absl")  # Orbax warns that it replaces its default handler.
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        ocp.type_handlers.register_type_handler(
            jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False),
            override=True)
    finally:
        absl.setLevel(level)


def _tree(state: TrainState) -> dict:
    """The fields to save; an unused EMA (``{}``) is left out, as before it existed."""
    return {f: getattr(state, f) for f in _FIELDS if f != "ema" or state.ema}


class Checkpointer:
    """Saves every ``every_steps`` (and when forced), keeps the last ``keep``."""

    def __init__(self, workdir: str, every_steps: int = 1, keep: int = 1,
                 read_only: bool = False, best_metric: str = ""):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self.best_metric = best_metric
        self.restored_position = None  # The input's position saved with the restored step.
        _write_replicated_arrays_whole()
        self._manager = ocp.CheckpointManager(
            self.directory, options=_options(every_steps, keep, read_only, best_metric),
            # Named up front so a new manager can read a saved tree's metadata.
            item_handlers=ocp.StandardCheckpointHandler())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def last_good(self) -> str:
        """Where a run that went wrong can go back to, for its error message."""
        latest = self.latest_step()
        return ("no checkpoint yet" if latest is None else
                f"the last good checkpoint is step {latest} in {self.directory}")

    def best_step(self) -> int | None:
        """The step whose saved metrics are best by ``best_metric`` (None: none has them)."""
        if not self.best_metric:  # Orbax would answer with the latest step.
            return None
        return self._manager.best_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def require_step(self, step: int) -> None:
        """``CheckpointError`` listing the saved steps unless ``step`` is one of them."""
        if step not in self._manager.all_steps():
            steps = ", ".join(map(str, self.all_steps())) or "none"
            raise CheckpointError(f"no checkpoint step {step} in {self.directory} (steps: "
                                  f"{steps})")

    def restore_step(self, state: TrainState, step: int) -> TrainState:
        """``state`` with step ``step``'s values; ``CheckpointError`` if it is not good.

        Nothing is moved or written: for reading a run (evaluation), not resuming it.
        """
        self._manager.wait_until_finished()  # The step may be one still being saved.
        self.require_step(step)
        with tempfile.TemporaryDirectory() as tmp:  # Not the workdir: nothing is written.
            log, problem = pathlib.Path(tmp) / "restore_errors.log", None
            with restore_errors.captured(log):
                try:
                    restored = self._restore(step, state)
                except _Corrupt as e:  # Orbax's tracebacks in the log say nothing more.
                    problem = str(e)
                    restore_errors.await_abandoned_reads()
            if problem is None:
                restore_errors.replay(log)
                return restored
        raise CheckpointError(f"checkpoint step {step} in {self.directory} is corrupt: "
                              f"{problem}")

    def restore_latest(self, state: TrainState) -> TrainState:
        """``state`` with the latest good checkpoint's values, or ``state`` if there is none.

        ``state`` gives the structure, dtypes and shardings to restore into. A run
        resumed with ``ema_decay`` switched on starts its EMA from the restored
        weights; switched off, the saved EMA is dropped. Corrupt steps are moved
        aside; ``CheckpointError`` if every step is corrupt.
        """
        lead = jax.process_index() == 0  # Processes share the workdir: one moves steps.
        log = self.directory.parent / f".restore_errors.{jax.process_index()}.log"
        corrupt, restored = [], None
        with restore_errors.captured(log):
            for step in sorted(self._manager.all_steps(), reverse=True):
                try:
                    restored = self._restore(step, state)
                    break
                except _Corrupt as e:
                    corrupt.append((step, str(e)))
            if corrupt:  # Orbax's abandoned reads report on stderr and in logs as they end.
                restore_errors.await_abandoned_reads()
        if not corrupt:
            restore_errors.replay(log)
            return state if restored is None else restored
        if not lead:
            log.unlink()
            if restored is None:
                raise CheckpointError(f"no good checkpoint in {self.directory}")
            return restored
        moved = [self._move_aside(step) for step, _ in corrupt]
        shutil.move(str(log), str(moved[0] / "restore_errors.log"))
        steps = "; ".join(f"step {step}: {reason}" for step, reason in corrupt)
        where = (f"moved to {moved[0].parent} (Orbax's errors: restore_errors.log in "
                 f"{moved[0].name}/)")
        if restored is None:
            raise CheckpointError(
                f"no good checkpoint in {self.directory}: every step was corrupt ({steps}); "
                f"{where}; use a new --workdir, or move them back to retry")
        print(f"warning: corrupt checkpoint ({steps}) {where}; resumed from step "
              f"{int(restored.step)}", file=sys.stderr, flush=True)
        return restored

    def _restore(self, step: int, state: TrainState) -> TrainState:
        try:
            saved = self._manager.item_metadata(step)
            saved_keys, saved_params = saved.keys(), saved["params"]
        except Exception as e:  # noqa: BLE001 - any unreadable metadata is corruption.
            raise _Corrupt(f"unreadable metadata ({_first_line(e)})") from None
        target = _tree(state)
        target.pop("ema", None)
        if "ema" in saved_keys:
            target["ema"] = state.variables()  # The EMA's structure, whether kept or not.
        if "digest" in saved_keys:
            target["digest"] = np.zeros(integrity.DIGEST_BYTES, np.uint8)
        if "input_position" in saved_keys:
            target["input_position"] = np.zeros(saved["input_position"].shape, np.uint8)
        self._check_same_model(saved_params, target["params"])
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # noqa: BLE001 - truncated or garbled files.
            raise _Corrupt(f"unreadable ({_first_line(e)})") from None
        saved_digest = restored.pop("digest", None)
        problem = integrity.verify(restored, saved_digest)
        if problem:
            raise _Corrupt(problem)
        position = restored.pop("input_position", None)
        self.restored_position = None if position is None else json.loads(bytes(position))
        saved_ema = restored.pop("ema", None)
        if not state.ema:  # None kept, or switched off: drop a saved one.
            return state.replace(**restored)
        if saved_ema is None:  # Switched on: start from the restored weights.
            return state.replace(**restored).start_ema()
        return state.replace(**restored, ema=saved_ema)

    def _check_same_model(self, saved_params, params) -> None:
        """``CheckpointError`` when a step's parameters (metadata) are not this model's."""
        difference = integrity.shape_difference(saved_params, params)
        if difference:
            raise CheckpointError(
                f"{self.directory} holds another model's checkpoints ({difference}); "
                "use a new --workdir for this model")

    def _move_aside(self, step: int) -> pathlib.Path:
        aside = self.directory.parent / CORRUPT_DIR / str(step)
        aside.parent.mkdir(exist_ok=True)
        if aside.exists():  # Moved aside before, under the same step: keep both.
            aside = aside.with_name(f"{step}.{len(list(aside.parent.iterdir()))}")
        shutil.move(str(self.directory / str(step)), str(aside))
        self._manager.reload()
        return aside

    def save(self, state: TrainState, force: bool = False, metrics: dict | None = None,
             position: dict | None = None) -> bool:
        """Saves if the step is due (or ``force``); returns whether it saved. ``metrics``
        (an epoch's) rank the step for ``best_metric``; ``position`` (the input's iterator
        state, JSON) comes back as ``restored_position`` when the step is resumed.

        Raises ``FloatingPointError`` instead of saving a state with a non-finite
        value: a checkpoint must always be a state worth resuming.
        """
        step = int(state.step)
        if step == self._manager.latest_step() or not (force or self._manager.should_save(step)):
            return False
        tree = _tree(state)
        if position is not None:
            tree["input_position"] = np.frombuffer(json.dumps(position).encode(), np.uint8)
        leaves = integrity.host_leaves(tree)
        problem = integrity.nonfinite(leaves)
        if problem:
            good = self.last_good()
            raise FloatingPointError(f"{problem} at step {step}: not checkpointed; {good}. "
                                     f"{DIVERGED_CAUSES}")
        tree["digest"] = integrity.digest(leaves)
        if not self.best_metric:
            metrics = None  # Orbax writes them only when it tracks a best step.
        with self._storage_errors():
            return self._manager.save(step, args=ocp.args.StandardSave(tree), force=force,
                                      metrics=metrics)

    def wait(self) -> None:
        """Returns once every checkpoint asked for is on disk."""
        with self._storage_errors():
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending asynchronous writes."""
        with self._storage_errors():
            self._manager.wait_until_finished()
        self._manager.close()

    @contextlib.contextmanager
    def _storage_errors(self):
        """A save the storage refuses (a full disk, say: Orbax reports it from its writing
        threads, at the next save or wait) as a ``CheckpointError`` of one line."""
        try:
            yield
        except (OSError, ValueError, RuntimeError) as e:
            found = _STORAGE_FAILURE.search(str(e))
            if not found:
                raise
            latest = self._manager.latest_step()
            kept = ("none was written before it" if latest is None else
                    f"the last good one, step {latest}, is untouched")
            raise CheckpointError(
                f"cannot write a checkpoint in {self.directory}: {found[0]}; {kept}: free "
                "space or give another --workdir, then run the same command to resume"
            ) from None


def _options(every_steps: int, keep: int, read_only: bool,
             best_metric: str) -> ocp.CheckpointManagerOptions:
    """Keep the last ``keep`` steps and, with ``best_metric``, the best epoch's as well."""
    if read_only:  # Orbax warns about (and ignores) a read-only manager's save settings.
        every_steps, keep = 0, None
    if not best_metric:
        return ocp.CheckpointManagerOptions(save_interval_steps=every_steps, max_to_keep=keep,
                                            read_only=read_only, create=not read_only)
    lowest = best_metric.endswith("loss")
    metric = lambda metrics: metrics[best_metric]  # noqa: E731
    policies = [ocp.checkpoint_managers.BestN(
        get_metric_fn=metric, reverse=lowest, n=1, keep_checkpoints_without_metrics=False)]
    if keep is not None:
        policies.append(ocp.checkpoint_managers.LatestN(n=keep))
    return ocp.CheckpointManagerOptions(
        save_interval_steps=every_steps, read_only=read_only, create=not read_only,
        best_fn=metric, best_mode="min" if lowest else "max",
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies))


def _first_line(e: BaseException) -> str:
    """The root cause's first line: Orbax wraps TensorStore's precise error in a vague one."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:160] if text else ''}"
