"""Schedules, weight-decay masks and config validation."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from resnet_flax.config import default_config
from resnet_flax.run.validate import validate
from resnet_flax.train import optim


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


def test_warmup_ramps_in_front_of_piecewise_with_boundaries_from_the_start():
    lr = optim.schedule(config(schedule="piecewise", lr=0.1, warmup_epochs=1,
                               lr_boundaries_epochs=(3,), num_epochs=4), steps_per_epoch=10)
    np.testing.assert_allclose([lr(0), lr(5), lr(10), lr(29), lr(30)],
                               [0.0, 0.05, 0.1, 0.1, 0.01], rtol=1e-6)
    flat = optim.schedule(config(schedule="constant", lr=0.2, warmup_epochs=0.5),
                          steps_per_epoch=10)
    np.testing.assert_allclose([flat(0), flat(4), flat(5), flat(99)], [0, 0.16, 0.2, 0.2],
                               rtol=1e-6)


def test_lr_scales_with_the_batch_when_asked():
    c = config(lr=0.1, batch_size=1024, lr_base_batch=256)
    assert optim.peak_lr(c) == pytest.approx(0.4)
    assert float(optim.schedule(c, 10)(0)) == pytest.approx(0.4)
    assert optim.peak_lr(config(lr=0.1, batch_size=1024)) == 0.1


def test_onecycle_rises_to_the_peak_then_anneals_as_torch_does():
    lr = optim.schedule(config(schedule="onecycle", lr=1.0, num_epochs=10),
                        steps_per_epoch=10)  # 100 steps, the peak at step 30.
    assert float(lr(0)) == pytest.approx(1 / 25)
    assert float(lr(30)) == pytest.approx(1.0)
    assert float(lr(15)) == pytest.approx((1 + 1 / 25) / 2, rel=1e-4)  # Cosine midpoint.
    assert float(lr(100)) == pytest.approx(1 / 25 / 1e4, rel=1e-3)


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
    ("optimizer", "rmsprob", "optimizer='rmsprob' is not an optax optimizer.*'rmsprop'"),
    ("schedule", "step", "schedule='step'"),
    ("batch_size", 0, "batch_size=0"),
    ("label_smoothing", 1.5, "label_smoothing=1.5"),
    ("ema_decay", 1.0, r"ema_decay=1.0 must be in \[0, 1\)"),
    ("lr_base_batch", -256, "lr_base_batch=-256 must be >= 0"),
    ("onecycle_pct_start", 1.0, r"onecycle_pct_start=1.0 must be in \(0, 1\)"),
    ("onecycle_final_div_factor", 0.0, "onecycle_final_div_factor=0.0 must be a finite"),
    ("parallelism", "pmpa", "parallelism='pmpa' is not one of.*did you mean 'pmap'"),
    ("grad_accum_steps", 3, "grad_accum_steps=3 must be >= 1 and divide batch_size=128"),
    ("grad_clip_norm", float("nan"), "grad_clip_norm=nan must be a finite"),
    ("trust_coefficient", -1.0, "trust_coefficient=-1.0 must be a finite"),
])
def test_bad_config_values_are_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        validate(config(**{field: value}))


@pytest.mark.parametrize("name", ["lars", "lamb"])
def test_large_batch_optimizers_build_and_step(name):
    params = {"w": jnp.ones((2, 2))}
    tx = optim.optimizer(config(optimizer=name, weight_decay=1e-4), optax.constant_schedule(0.1))
    updates, _ = tx.update({"w": jnp.ones((2, 2))}, tx.init(params), params)
    assert float(updates["w"][0, 0]) < 0


def test_lars_scales_each_layer_by_its_trust_ratio_and_skips_bn_when_asked():
    w, g, wd, eta = jnp.full((2, 2), 3.0), jnp.full((2, 2), 0.5), 0.1, 0.01
    params = {"conv": {"kernel": w}, "bn": {"scale": jnp.ones(2)}}
    grads = {"conv": {"kernel": g}, "bn": {"scale": jnp.full(2, 0.5)}}
    tx = optim.optimizer(config(optimizer="lars", momentum=0.0, weight_decay=wd,
                                trust_coefficient=eta, decay_bn_and_bias=False),
                         optax.constant_schedule(1.0))
    updates, _ = tx.update(grads, tx.init(params), params)
    d = g + wd * w  # You et al. 2017: lr * eta * |w| / |g + wd w| * (g + wd w).
    expected = -eta * jnp.linalg.norm(w) / jnp.linalg.norm(d) * d
    np.testing.assert_allclose(updates["conv"]["kernel"], expected, rtol=1e-6)
    np.testing.assert_allclose(updates["bn"]["scale"], -0.5, rtol=1e-6)  # Plain SGD.


def test_gradient_clipping_bounds_the_global_norm():
    params = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    grads = {"a": jnp.full(3, 4.0), "b": jnp.full((2, 2), 3.0)}  # Global norm sqrt(84).
    tx = optim.optimizer(config(optimizer="sgd", momentum=0.0, grad_clip_norm=2.0),
                         optax.constant_schedule(1.0))
    updates, _ = tx.update(grads, tx.init(params), params)
    assert float(optax.tree.norm(updates)) == pytest.approx(2.0, rel=1e-6)
    np.testing.assert_allclose(updates["a"], -4.0 * 2.0 / np.sqrt(84), rtol=1e-6)
