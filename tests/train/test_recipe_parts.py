"""The training parts the modern recipes add: timm's binary cross-entropy against
torch's, an EMA updated every N steps, and a warm-up from a share of the peak lr."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_steps import make_state

from resnet_flax.config import default_config
from resnet_flax.train import optim, steps


def test_bce_is_torchs_binary_cross_entropy_on_thresholded_mixed_targets():
    torch = pytest.importorskip("torch")
    logits = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32) * 3
    labels = np.array([0, 1, 2, 3, 4, 0])
    targets = 0.7 * np.eye(5)[labels] + 0.3 * np.eye(5)[labels[::-1]]  # Mixed, lam 0.7.
    for threshold in (0.0, 0.2, 0.5):
        cfg = steps.StepConfig(num_classes=5, mean=(), std=(), loss="bce",
                               bce_target_threshold=threshold)
        ours = steps.training_loss(jnp.asarray(logits), jnp.asarray(targets, jnp.float32), cfg)
        t = torch.tensor(targets, dtype=torch.float32)
        if threshold:  # timm's BinaryCrossEntropy(target_threshold=...).
            t = t.gt(threshold).to(t.dtype)
        theirs = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(logits), t)
        np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-6)
    softmax = steps.StepConfig(num_classes=5, mean=(), std=())
    assert float(steps.training_loss(jnp.asarray(logits), jnp.asarray(targets), softmax)) \
        == pytest.approx(float(torch.nn.functional.cross_entropy(
            torch.tensor(logits), torch.tensor(targets, dtype=torch.float32))), rel=1e-6)


def test_the_ema_moves_after_the_first_step_and_every_nth_only():
    state = make_state(ema=True)
    before = jax.tree.leaves(state.ema)
    moved = []
    for step in range(1, 8):
        state = state.replace(step=jnp.asarray(step), params=jax.tree.map(
            lambda p: p + 1.0, state.params))
        new = state.update_ema(0.99, every=3)
        moved.append(any(not np.array_equal(a, b) for a, b in
                         zip(jax.tree.leaves(state.ema), jax.tree.leaves(new.ema))))
        state = new
    assert moved == [True, False, False, True, False, False, True]
    assert any(not np.array_equal(a, b) for a, b in zip(before, jax.tree.leaves(state.ema)))


def test_the_warm_up_starts_at_its_share_of_the_peak():
    config = default_config()
    config.lr, config.schedule, config.warmup_epochs, config.num_epochs = 0.5, \
        "warmup_cosine", 5.0, 20
    config.warmup_start_factor = 0.01
    lr = optim.schedule(config, steps_per_epoch=10)
    assert float(lr(0)) == pytest.approx(0.005) and float(lr(50)) == pytest.approx(0.5)
    config.schedule = "piecewise"
    lr = optim.schedule(config, steps_per_epoch=10)
    assert float(lr(0)) == pytest.approx(0.005) and float(lr(25)) == pytest.approx(0.2525)
