"""Many train steps in one compiled call: ``lax.scan`` over ``steps.train_step``.

``train_steps(state, images, labels, batches, key, cfg)`` runs one step per row
of ``batches`` (an int32 ``(steps, batch)`` array of example indices, e.g. a whole
epoch's permutation from ``pipeline.train_batches``) without returning to the
host in between, and returns the final state and the summed step metrics. The
result equals calling ``steps.train_step`` row by row (same per-step randomness,
``fold_in(key, state.step)``).

``jit_train_steps(cfg, mesh)`` jits it with the shardings ``run.train_loop.Trainer`` uses:
state, data and key replicated, each row of ``batches`` split over the mesh's
data axis, the state donated.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from resnet_flax.data import sources
from resnet_flax.train import parallel, steps


def train_steps(state, images, labels, batches, key, cfg: steps.StepConfig):
    """``state`` after one ``train_step`` per row of ``batches``; metrics summed."""

    def body(carry, indices):
        state, sums = carry
        state, metrics = steps.train_step(state, sources.gather((images, labels, indices)),
                                          key, cfg)
        return (state, jax.tree.map(jnp.add, sums, metrics)), None

    zeros = {"loss_sum": jnp.float32(0), "correct": jnp.float32(0), "count": jnp.float32(0),
             "nonfinite": jnp.float32(0)}
    (state, sums), _ = jax.lax.scan(body, (state, zeros), batches)
    return state, sums


def rows_sharded(mesh) -> NamedSharding:
    """A ``(steps, batch)`` index array with each row split over the data axis."""
    return NamedSharding(mesh, PartitionSpec(None, parallel.DATA_AXIS))


def jit_train_steps(cfg: steps.StepConfig, mesh):
    """``train_steps`` jitted like ``Trainer``'s step: (state, images, labels, batches, key)."""
    repl = parallel.replicated(mesh)
    return jax.jit(functools.partial(train_steps, cfg=cfg),
                   in_shardings=(repl, repl, repl, rows_sharded(mesh), repl),
                   out_shardings=(repl, repl), donate_argnums=0)
