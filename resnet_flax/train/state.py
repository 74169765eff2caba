"""The training state: everything a checkpoint must hold to resume exactly."""

from __future__ import annotations

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
    """Step, parameters, BatchNorm statistics, optimizer state and the weights' EMA.

    The model and optimizer are static so the state is a plain pytree that Orbax
    saves and restores as is. Per-step randomness derives from (seed, step), so
    no RNG key needs to be stored. ``ema`` is ``{}`` unless the run keeps an
    exponential moving average of the model (``{"params", "batch_stats"}``).
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    ema: Any
    apply_fn: Any = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    def apply_gradients(self, grads, batch_stats) -> TrainState:
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)

    def variables(self, ema: bool = False) -> dict:
        """The model's variables for ``apply_fn``: the live ones, or their EMA."""
        if ema:
            return self.ema
        return {"params": self.params, "batch_stats": self.batch_stats}

    def with_variables(self, variables: dict) -> TrainState:
        """This state started again from ``variables`` (``{"params", "batch_stats"}``):
        fresh optimizer moments, and the EMA (if kept) restarted at them."""
        params = variables["params"]
        state = self.replace(params=params, batch_stats=variables.get("batch_stats", {}),
                             opt_state=self.tx.init(params))
        return state.start_ema() if self.ema else state

    def start_ema(self) -> TrainState:
        """Starts an exponential moving average at the current variables."""
        # Copies: the step donates the state, and a buffer can be donated once.
        return self.replace(ema=jax.tree.map(jnp.copy, self.variables()))

    def update_ema(self, decay: float, every: int = 1) -> TrainState:
        """Moves the EMA toward the current variables (call after the step's update), after
        the first step's update and every ``every``-th one from there (torchvision's V2
        recipe: 32); the others leave it as it is.

        The decay ramps up as ``min(decay, (1 + t) / (10 + t))`` at update ``t`` (0 for
        the first step's), as in TensorFlow's ExponentialMovingAverage, so the
        average does not start out weighted toward the random initialisation.
        """
        t = self.step.astype(jnp.float32) - 1.0
        d = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
        if every > 1:
            d = jnp.where((self.step - 1) % every == 0, d, 1.0)
        ema = jax.tree.map(lambda e, v: e + (1.0 - d) * (v - e), self.ema, self.variables())
        return self.replace(ema=ema)


def create(model, tx: optax.GradientTransformation, rng: jax.Array,
           input_shape: tuple[int, ...], ema: bool = False) -> TrainState:
    """Initialises ``model`` on a dummy batch of ``input_shape`` (H, W, C).

    ``ema=True`` starts an exponential moving average of the variables at their
    initial values.
    """
    variables = model.init({"params": rng}, jnp.zeros((1, *input_shape), jnp.float32),
                           train=False)
    params = variables["params"]
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                       batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
                       ema={}, apply_fn=model.apply, tx=tx)
    return state.start_ema() if ema else state


# The initialisation runs once: compiled quickly (LLVM level 1, no expensive passes) it
# starts sooner and runs as fast; level 0 runs slower (BENCHMARKS.md, "Start-up").
_QUICK_COMPILE = {"xla_backend_optimization_level": 1, "xla_llvm_disable_expensive_passes": True}


def create_compiled(model, tx: optax.GradientTransformation, rng: jax.Array,
                    input_shape: tuple[int, ...], ema: bool = False) -> TrainState:
    """``create`` as one program compiled for a quick compile (a rerun, resume or
    evaluation of the same model loads it from the persistent compilation cache). Every
    output is its own buffer (the EMA's too), so the step may donate them."""
    init = jax.jit(functools.partial(create, model, tx, input_shape=input_shape, ema=ema))
    return init.lower(rng).compile(compiler_options=_QUICK_COMPILE)(rng)
