"""The training state: everything a checkpoint must hold to resume exactly."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
    """Step, parameters, BatchNorm statistics and optimizer state.

    The model and optimizer are static so the state is a plain pytree that Orbax
    saves and restores as is. Per-step randomness derives from (seed, step), so
    no RNG key needs to be stored.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    apply_fn: Any = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    def apply_gradients(self, grads, batch_stats) -> TrainState:
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)


def create(model, tx: optax.GradientTransformation, rng: jax.Array,
           input_shape: tuple[int, ...]) -> TrainState:
    """Initialises ``model`` on a dummy batch of ``input_shape`` (H, W, C)."""
    variables = model.init({"params": rng}, jnp.zeros((1, *input_shape), jnp.float32),
                           train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
                      apply_fn=model.apply, tx=tx)
