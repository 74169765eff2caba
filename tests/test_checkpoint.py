"""Checkpointer: round trip, and resuming with the EMA switched on or off."""

import jax
import numpy as np
import optax
import pytest

from resnet_flax import checkpoint, models
from resnet_flax import state as state_lib


def make_state(ema: bool, seed: int = 0):
    model = models.create("cifar_resnet4", num_classes=10, width_multiplier=0.25)
    return state_lib.create(model, optax.sgd(0.1, momentum=0.9), jax.random.key(seed),
                            (8, 8, 3), ema=ema)


def saved(tmp_path, state):
    ckpt = checkpoint.Checkpointer(str(tmp_path), every_steps=1, keep=2)
    ckpt.save(state.replace(step=state.step + 5), force=True)
    ckpt.close()
    return checkpoint.Checkpointer(str(tmp_path), every_steps=1, keep=2)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("ema", [False, True])
def test_round_trip(tmp_path, ema):
    src = make_state(ema, seed=1)
    if ema:  # An EMA that differs from the weights, to see it is the one restored.
        src = src.replace(ema=jax.tree.map(lambda x: x + 1, src.ema))
    restored = saved(tmp_path, src).restore_latest(make_state(ema, seed=2))
    assert int(restored.step) == 5
    assert_trees_equal(restored.params, src.params)
    assert_trees_equal(restored.ema, src.ema)


def test_resume_with_ema_switched_on_starts_it_from_the_restored_weights(tmp_path):
    src = make_state(ema=False, seed=1)
    restored = saved(tmp_path, src).restore_latest(make_state(ema=True, seed=2))
    assert_trees_equal(restored.ema, src.variables())


def test_resume_with_ema_switched_off_drops_it(tmp_path):
    src = make_state(ema=True, seed=1)
    restored = saved(tmp_path, src).restore_latest(make_state(ema=False, seed=2))
    assert restored.ema == {}
    assert_trees_equal(restored.params, src.params)
