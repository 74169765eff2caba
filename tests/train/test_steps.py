"""Train and eval steps: learning on a fixed batch, masked eval, label smoothing, EMA, TTA."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from resnet_flax import models
from resnet_flax.data import augment, pipeline, sources
from resnet_flax.train import parallel, steps
from resnet_flax.train import state as state_lib

CFG = steps.StepConfig(num_classes=10, mean=(0.5,), std=(0.25,))


def device_train_step(state, images, labels, idx, key, cfg):
    """The train step as the device input composes it: its rows gathered in the step."""
    return steps.train_step(state, sources.gather((images, labels, idx)), key, cfg)


def device_eval_step(state, images, labels, idx, mask, cfg, ema=False):
    return steps.eval_step(state, sources.gather((images, labels, idx, mask)), cfg, ema)


# Jitted once, as the loop runs them: tests with the same config and shapes share a compile.
train_step = jax.jit(device_train_step, static_argnames=("cfg",))
eval_step = jax.jit(device_eval_step, static_argnames=("cfg", "ema"))


@functools.cache  # A state is immutable: tests share it, and its (op by op) init.
def make_state(name="fashion_mnist_resnet", lr=1e-3, ema=False, **kw):
    model = models.create(name, num_classes=10, width_multiplier=0.25, **kw)
    return state_lib.create(model, optax.adam(lr), jax.random.key(0), (28, 28, 1), ema=ema)


def fake_split(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.int32)
    images = (rng.integers(0, 40, (n, 28, 28, 1)) + 20 * labels[:, None, None, None])
    return images.astype(np.uint8), labels


def test_one_step_lowers_the_loss_on_a_fixed_batch():
    images, labels = fake_split(16)
    state = make_state(dropout_rate=0.0)
    idx = jnp.arange(16)
    key = jax.random.key(0)
    eval_loss = lambda s: float(  # noqa: E731
        eval_step(s, images, labels, idx, jnp.ones(16), CFG)["loss_sum"])
    before = eval_loss(state)
    step = functools.partial(train_step, cfg=CFG)
    for _ in range(3):
        state, metrics = step(state, images, labels, idx, key)
    assert int(state.step) == 3
    assert float(metrics["count"]) == 16 and float(metrics["nonfinite"]) == 0
    assert eval_loss(state) < before


def test_ragged_last_eval_batch_counts_every_example_once():
    images, labels = fake_split(37)
    state = make_state()
    mesh = parallel.make_mesh()
    batch = parallel.batch_sharded(mesh)
    step = functools.partial(eval_step, cfg=CFG)
    totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    for idx, mask in zip(*pipeline.eval_batches(37, 16)):  # 16 + 16 + 5 (padded)
        out = step(state, images, labels, jax.device_put(idx, batch),
                   jax.device_put(mask, batch))
        totals = {k: totals[k] + float(out[k]) for k in totals}
    whole = eval_step(state, images, labels, jnp.arange(37), jnp.ones(37), CFG)
    assert totals["count"] == 37
    assert totals["correct"] == float(whole["correct"])
    np.testing.assert_allclose(totals["loss_sum"], float(whole["loss_sum"]), rtol=1e-5)


def test_label_smoothing_matches_its_definition():
    logits = jnp.array([[2.0, 0.0, -1.0]])
    smoothed = steps.cross_entropy(logits, jnp.array([0]), 3, label_smoothing=0.3)
    logp = jax.nn.log_softmax(logits)[0]
    target = jnp.array([0.7 + 0.1, 0.1, 0.1])
    np.testing.assert_allclose(float(smoothed[0]), float(-(target * logp).sum()), rtol=1e-6)


def test_train_step_is_deterministic_in_its_key_and_step():
    images, labels = fake_split(16)
    step = functools.partial(train_step, cfg=steps.StepConfig(
        10, (0.5,), (0.25,), crop_padding=2, random_flip=True))
    key, idx = jax.random.key(3), jnp.arange(8)
    a, _ = step(make_state(), images, labels, idx, key)
    b, _ = step(make_state(), images, labels, idx, key)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def test_ema_follows_its_definition_with_a_warmup_ramp():
    images, labels = fake_split(16)
    cfg = steps.StepConfig(10, (0.5,), (0.25,), ema_decay=0.5)
    step = functools.partial(train_step, cfg=cfg)
    state = make_state(ema=True, dropout_rate=0.0)
    ema = state.variables()
    for t in range(3):  # Ramp min(0.5, (1 + t) / (10 + t)): 0.1, 0.18, 0.25.
        state, _ = step(state, images, labels, jnp.arange(16), jax.random.key(0))
        d = min(0.5, (1 + t) / (10 + t))
        ema = jax.tree.map(lambda e, v, d=d: d * e + (1 - d) * v, ema, state.variables())
    for want, got in zip(jax.tree.leaves(ema), jax.tree.leaves(state.variables(ema=True))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The EMA lags the live weights, so the two models evaluate differently.
    live = eval_step(state, images, labels, jnp.arange(16), jnp.ones(16), cfg)
    avg = eval_step(state, images, labels, jnp.arange(16), jnp.ones(16), cfg, ema=True)
    assert float(live["loss_sum"]) != float(avg["loss_sum"])


def test_state_without_ema_carries_an_empty_one():
    images, labels = fake_split(16)
    state = make_state()
    assert state.ema == {}
    step = functools.partial(train_step, cfg=CFG)
    new, _ = step(state, images, labels, jnp.arange(16), jax.random.key(0))
    assert new.ema == {}


def test_flip_tta_averages_an_image_and_its_mirror():
    images, labels = fake_split(16)
    state = make_state()
    cfg = steps.StepConfig(10, (0.5,), (0.25,), tta_flip=True)
    idx, mask = jnp.arange(16), jnp.ones(16)
    out = eval_step(state, images, labels, idx, mask, cfg)
    x = augment.normalize(jnp.asarray(images), cfg.mean, cfg.std)
    logits = (state.apply_fn(state.variables(), x, train=False)
              + state.apply_fn(state.variables(), x[:, :, ::-1], train=False)) / 2
    want = steps.cross_entropy(logits, jnp.asarray(labels), 10).sum()
    np.testing.assert_allclose(float(out["loss_sum"]), float(want), rtol=1e-5)
    # So it cannot tell a test set from its mirror image; the plain eval can.
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    flipped = eval_step(state, mirrored, labels, idx, mask, cfg)
    np.testing.assert_allclose(float(flipped["loss_sum"]), float(out["loss_sum"]), rtol=1e-5)
    plain = eval_step(state, images, labels, idx, mask, CFG)
    plain_mirrored = eval_step(state, mirrored, labels, idx, mask, CFG)
    assert float(plain["loss_sum"]) != float(plain_mirrored["loss_sum"])


@pytest.mark.slow
def test_gradient_accumulation_equals_the_whole_batch_without_batchnorm():
    """k micro-batches of b give one update of batch k*b: same parameters, loss and
    correct count (the micro-batches' logits come back in the batch's order)."""
    images, labels = fake_split(32)
    idx = jnp.asarray(np.random.default_rng(1).permutation(32)[:16])
    model = models.create("fashion_mnist_resnet", num_classes=10, width_multiplier=0.25,
                          norm="none", dropout_rate=0.0)
    tx = optax.sgd(0.5, momentum=0.9)
    start = state_lib.create(model, tx, jax.random.key(0), (28, 28, 1))
    out = {}
    for k in (1, 4):
        cfg = dataclasses.replace(CFG, grad_accum_steps=k)
        step = functools.partial(train_step, cfg=cfg)
        state, metrics = step(start, images, labels, idx, jax.random.key(0))
        state, _ = step(state, images, labels, idx, jax.random.key(0))
        out[k] = state, metrics
    for a, b in zip(jax.tree.leaves(out[1][0].params), jax.tree.leaves(out[4][0].params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out[1][1]["loss_sum"], out[4][1]["loss_sum"], rtol=1e-5)
    assert float(out[1][1]["correct"]) == float(out[4][1]["correct"])


@pytest.mark.slow
def test_gradient_accumulation_updates_batchnorm_statistics_once_per_micro_batch():
    images, labels = fake_split(16)
    start = make_state(dropout_rate=0.0)
    idx = jnp.arange(16)
    stats = {}
    for k in (1, 2):
        cfg = dataclasses.replace(CFG, grad_accum_steps=k)
        state, metrics = functools.partial(train_step, cfg=cfg)(
            start, images, labels, idx, jax.random.key(0))
        assert float(metrics["nonfinite"]) == 0 and int(state.step) == 1
        stats[k] = jax.tree.leaves(state.batch_stats)
    # Two running updates from the half-batches' statistics, not one from the whole batch's.
    assert any(not np.allclose(a, b) for a, b in zip(stats[1], stats[2]))


def test_the_step_settings_are_the_config_fields_of_their_names():
    """A step setting is a config field, copied by name: a new augmentation is its config
    field, its check and its code (and this field), nowhere else."""
    from resnet_flax.config import default_config

    config = default_config()
    config.cutout_size, config.random_erasing_ratio = 8, [0.5, 2.0]  # A list, as JSON gives.
    cfg = steps.step_config(config, axis_name="data")
    derived = {"num_classes", "mean", "std", "axis_name", "canvas_crop"}
    for field in dataclasses.fields(steps.StepConfig):
        if field.name not in derived:
            assert field.name in config, field.name
            assert getattr(cfg, field.name) == steps._static(config[field.name])
    assert cfg.cutout_size == 8 and cfg.random_erasing_ratio == (0.5, 2.0)
    assert cfg.axis_name == "data" and cfg.num_classes == 10 and cfg.canvas_crop == 0
    hash(cfg)  # Static: jit keys its compiled programs on it.
