"""Keras' ``ReduceLROnPlateau`` and ``EarlyStopping``, decided after each epoch's evaluation.

Their counters live in the optimizer state (``CallbackState``, the last element of a
chained optimizer), so every checkpoint carries them and a killed and resumed run makes
exactly the decisions of an uninterrupted one. ``ReduceLROnPlateau`` multiplies every
update by ``lr_scale``, which for SGD, Adam and AdamW (weight decay included) is the
learning rate scaled, as Keras' setting of the optimizer's lr is. The decisions follow
Keras 2's code: a monitored value improves when it beats the best by more than
``min_delta`` (lower for a loss, higher for an accuracy).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

# Start values of a best-so-far that any first epoch beats (finite: checkpoints must be).
_WORST = {"min": float(np.finfo(np.float32).max), "max": float(np.finfo(np.float32).min)}
MONITORS = ("test_loss", "test_accuracy", "train_loss", "train_accuracy")
# What a best checkpoint can be chosen by (config.best_metric; "": none); a loss is best lowest.
BEST_METRICS = ("", "test_accuracy", "test_loss")


class CallbackState(NamedTuple):
    """Scalars (float32 / int32 arrays) of both callbacks."""

    lr_scale: jax.Array
    plateau_best: jax.Array
    plateau_wait: jax.Array
    plateau_cooldown: jax.Array
    early_best: jax.Array
    early_wait: jax.Array
    stopped_epoch: jax.Array  # 0 while training goes on.


def active(config) -> bool:
    return bool(config.reduce_lr_on_plateau.enabled or config.early_stopping.enabled)


def mode(monitor: str) -> str:
    """``min`` for a loss, ``max`` for an accuracy (Keras' ``mode="auto"``)."""
    return "min" if monitor.endswith("loss") else "max"


def transform(config) -> optax.GradientTransformation:
    """Scales updates by the state's ``lr_scale``; its state starts the counters."""
    plateau = mode(config.reduce_lr_on_plateau.monitor)
    early = mode(config.early_stopping.monitor)

    def init(params):
        del params
        f32, i32 = (lambda v: jnp.asarray(v, jnp.float32)), (lambda v: jnp.asarray(v, jnp.int32))
        return CallbackState(f32(1.0), f32(_WORST[plateau]), i32(0), i32(0),
                             f32(_WORST[early]), i32(0), i32(0))

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: u * state.lr_scale.astype(u.dtype), updates), state

    return optax.GradientTransformation(init, update)


def _improved(current: float, best: float, monitor: str, min_delta: float) -> bool:
    if mode(monitor) == "min":
        return current < best - min_delta
    return current > best + min_delta


def _plateau(cfg, s: dict, current: float, lr: float) -> None:
    """Keras 2's ``ReduceLROnPlateau.on_epoch_end`` on ``s`` (``lr``: the effective lr)."""
    if s["plateau_cooldown"] > 0:
        s["plateau_cooldown"] -= 1
        s["plateau_wait"] = 0
    if _improved(current, s["plateau_best"], cfg.monitor, cfg.min_delta):
        s["plateau_best"], s["plateau_wait"] = current, 0
    elif s["plateau_cooldown"] == 0:
        s["plateau_wait"] += 1
        if s["plateau_wait"] >= cfg.patience and lr > np.float32(cfg.min_lr):
            new_lr = max(lr * cfg.factor, cfg.min_lr)
            s["lr_scale"] *= new_lr / lr
            s["plateau_cooldown"], s["plateau_wait"] = cfg.cooldown, 0


def _early_stopping(cfg, s: dict, current: float, epoch: int) -> None:
    """Keras 2's ``EarlyStopping.on_epoch_end`` (no baseline) on ``s``."""
    s["early_wait"] += 1
    if _improved(current, s["early_best"], cfg.monitor, cfg.min_delta):
        s["early_best"], s["early_wait"] = current, 0
    elif s["early_wait"] >= cfg.patience and epoch > 1:
        s["stopped_epoch"] = epoch


def on_epoch_end(config, state: CallbackState, metrics: dict, epoch: int,
                 schedule_lr: float) -> CallbackState:
    """The counters after epoch ``epoch`` (1-based) with its ``metrics``; ``schedule_lr``
    is the schedule's lr at the epoch's last step (before ``lr_scale``)."""
    s = {k: v.item() for k, v in jax.device_get(state)._asdict().items()}
    plateau, early = config.reduce_lr_on_plateau, config.early_stopping
    if plateau.enabled:
        _plateau(plateau, s, metrics[plateau.monitor], schedule_lr * s["lr_scale"])
    if early.enabled:
        _early_stopping(early, s, metrics[early.monitor], epoch)
    return CallbackState(**{k: np.asarray(v, np.asarray(getattr(state, k)).dtype)
                            for k, v in s.items()})


def state_of(opt_state) -> CallbackState:
    """The ``CallbackState`` of an optimizer state built with ``transform`` last."""
    return opt_state[-1]


def with_state(opt_state, state: CallbackState):
    """``opt_state`` with its ``CallbackState`` replaced (same dtypes and placement)."""
    old = state_of(opt_state)
    placed = jax.tree.map(lambda o, n: jax.device_put(jnp.asarray(n, o.dtype), o.sharding),
                          old, state)
    return (*opt_state[:-1], placed)


def _find(opt_state) -> CallbackState | None:
    if isinstance(opt_state, tuple) and opt_state and isinstance(opt_state[-1], CallbackState):
        return opt_state[-1]
    return None


def lr_scale(opt_state) -> float:
    """The plateau's current lr multiplier (1 without callbacks)."""
    found = _find(opt_state)
    return 1.0 if found is None else float(found.lr_scale)


def stopped(opt_state) -> bool:
    """Whether early stopping has ended this run."""
    found = _find(opt_state)
    return found is not None and int(found.stopped_epoch) > 0
