"""``build(config, ...)``: the model, learning-rate schedule, optimizer and first train
state of a config, built one way for training, evaluation and the benchmark."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import optax
from flax import linen as nn

from resnet_flax import models
from resnet_flax.train import optim, steps
from resnet_flax.train import state as state_lib


@dataclasses.dataclass(frozen=True)
class Built:
    """What a run trains: the model, its lr per step, and the state (optimizer inside)."""

    model: nn.Module
    lr: optax.Schedule
    state: state_lib.TrainState


def build(config, num_classes: int, image_shape: tuple[int, int, int],
          steps_per_epoch: int = 1, step_model: Callable | None = None,
          init_key: jax.Array | None = None) -> Built:
    """``config``'s model for ``num_classes`` classes and images of ``image_shape`` (as the
    input gives them; ``input_size``/``input_channels`` adapt them for the model), with
    its optimizer and a state initialised from ``init_key`` (default: from the seed).
    ``step_model``: the compilation mode's binding of the model (``parallel``'s
    ``step_model``: what spans its devices)."""
    model = models.from_config(config, num_classes)
    lr = optim.schedule(config, steps_per_epoch)
    tx = optim.optimizer(config, lr, part_of=model.part_of)
    if step_model is not None:
        model = step_model(model)
    if init_key is None:
        init_key = seed_keys(config)[0]
    shape = steps.model_input_shape(image_shape, config.input_size, config.input_channels)
    state = state_lib.create_compiled(model, tx, init_key, shape, ema=config.ema_decay > 0)
    return Built(model, lr, state)


def seed_keys(config) -> tuple[jax.Array, jax.Array]:
    """(initialisation key, step key) of ``config.seed``: the step's randomness is
    ``fold_in(step key, step)``, so a run is a function of its seed."""
    init_key, step_key = jax.random.split(jax.random.key(config.seed))
    return init_key, step_key
