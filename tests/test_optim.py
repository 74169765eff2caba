"""Schedules, weight-decay masks and config validation."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from resnet_flax import optim
from resnet_flax.config import default_config, validate


def config(**kw):
    c = default_config()
    c.update(kw)
    return c


def test_piecewise_divides_by_ten_at_boundaries():
    lr = optim.schedule(config(schedule="piecewise", lr=0.1, lr_boundaries_epochs=(2, 3),
                               num_epochs=4), steps_per_epoch=10)
    np.testing.assert_allclose([lr(0), lr(19), lr(20), lr(29), lr(30)],
                               [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-6)


def test_warmup_cosine_rises_then_decays_to_zero():
    lr = optim.schedule(config(schedule="warmup_cosine", lr=1.0, warmup_epochs=1,
                               num_epochs=5), steps_per_epoch=10)
    assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(1.0)
    assert float(lr(30)) < 1.0 and float(lr(50)) == pytest.approx(0.0, abs=1e-6)


def test_weight_decay_can_skip_bn_and_biases():
    params = {"conv": {"kernel": jnp.ones((3, 3, 1, 1))}, "bn": {"scale": jnp.ones(1)},
              "fc": {"bias": jnp.ones(1)}}
    tx = optim.optimizer(config(optimizer="sgd", momentum=0.0, lr=1.0, weight_decay=0.1,
                                decay_bn_and_bias=False), optax.constant_schedule(1.0))
    zeros = {k: {n: jnp.zeros_like(v) for n, v in d.items()} for k, d in params.items()}
    updates, _ = tx.update(zeros, tx.init(params), params)
    assert float(updates["conv"]["kernel"][0, 0, 0, 0]) == pytest.approx(-0.1)
    assert float(updates["bn"]["scale"][0]) == 0.0 and float(updates["fc"]["bias"][0]) == 0.0


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_each_optimizer_builds_and_steps(name):
    params = {"w": jnp.ones((2, 2))}
    tx = optim.optimizer(config(optimizer=name, nesterov=True, weight_decay=1e-4),
                         optax.constant_schedule(0.1))
    updates, _ = tx.update({"w": jnp.ones((2, 2))}, tx.init(params), params)
    assert float(updates["w"][0, 0]) < 0


@pytest.mark.parametrize("field,value,match", [
    ("optimizer", "rmsprop", "optimizer='rmsprop'.*sgd"),
    ("schedule", "step", "schedule='step'"),
    ("batch_size", 0, "batch_size=0"),
    ("label_smoothing", 1.5, "label_smoothing=1.5"),
    ("ema_decay", 1.0, r"ema_decay=1.0 must be in \[0, 1\)"),
])
def test_bad_config_values_are_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        validate(config(**{field: value}))
