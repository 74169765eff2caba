"""Orbax checkpoints of the train state: periodic saves, resume from the latest.

Saves are atomic (Orbax writes to a temporary folder and renames), so a crash
mid-save leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp

from resnet_flax.state import TrainState

_FIELDS = ("step", "params", "batch_stats", "opt_state", "ema")


def _tree(state: TrainState) -> dict:
    """The fields to save; an unused EMA (``{}``) is left out, as before it existed."""
    return {f: getattr(state, f) for f in _FIELDS if f != "ema" or state.ema}


class Checkpointer:
    """Saves every ``every_steps`` (and when forced), keeps the last ``keep``."""

    def __init__(self, workdir: str, every_steps: int, keep: int):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(save_interval_steps=every_steps,
                                                 max_to_keep=keep),
            # Named up front so a new manager can read a saved tree's metadata.
            item_handlers=ocp.StandardCheckpointHandler())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore_latest(self, state: TrainState) -> TrainState:
        """``state`` with the latest checkpoint's values, or ``state`` if there is none.

        ``state`` gives the structure, dtypes and shardings to restore into. A run
        resumed with ``ema_decay`` switched on starts its EMA from the restored
        weights; switched off, the saved EMA is dropped.
        """
        step = self._manager.latest_step()
        if step is None:
            return state
        target = _tree(state)
        target.pop("ema", None)
        if "ema" in self._manager.item_metadata(step).keys():
            target["ema"] = state.variables()  # The EMA's structure, whether kept or not.
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        saved_ema = restored.pop("ema", None)
        if not state.ema:  # None kept, or switched off: drop a saved one.
            return state.replace(**restored)
        if saved_ema is None:  # Switched on: start from the restored weights.
            return state.replace(**restored).start_ema()
        return state.replace(**restored, ema=saved_ema)

    def save(self, state: TrainState, force: bool = False) -> bool:
        """Saves if the step is due (or ``force``); returns whether it saved."""
        step = int(state.step)
        if step == self._manager.latest_step():
            return False
        return self._manager.save(step, args=ocp.args.StandardSave(_tree(state)), force=force)

    def close(self) -> None:
        """Waits for pending asynchronous writes."""
        self._manager.wait_until_finished()
        self._manager.close()
