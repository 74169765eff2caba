"""ReduceLROnPlateau and EarlyStopping: Keras 2's decisions, in the checkpoint, end to end."""

import jax
import numpy as np
import optax
import pytest
from conftest import tiny_config, tiny_overrides
from runs import final_params, read_metrics, run_main, tensorboard_points

from resnet_flax.config import ConfigError, default_config
from resnet_flax.run import train_loop
from resnet_flax.run.validate import validate
from resnet_flax.train import callbacks


def decide(config, values, key):
    state = callbacks.transform(config).init({})
    out = []
    for epoch, value in enumerate(values, 1):
        state = callbacks.on_epoch_end(config, state, {key: value}, epoch, schedule_lr=1.0)
        out.append(state)
    return out


def test_plateau_reduces_as_keras_does_with_patience_cooldown_and_min_lr():
    config = default_config()
    plateau = config.reduce_lr_on_plateau
    plateau.enabled, plateau.factor, plateau.patience = True, 0.5, 2
    plateau.cooldown, plateau.min_delta, plateau.min_lr = 1, 0.0, 0.2
    losses = [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.6, 0.6, 0.6, 0.6]
    # Worked by hand through Keras 2's on_epoch_end: wait reaches 2 at epoch 3; the
    # cooldown epoch 4 resets it; 5 reduces again; 6 improves; 8 hits min_lr, 10 stays.
    expected = [1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2]
    scales = [float(s.lr_scale) for s in decide(config, losses, "test_loss")]
    np.testing.assert_allclose(scales, expected, rtol=1e-6)


def test_early_stopping_waits_patience_epochs_without_a_min_delta_improvement():
    config = default_config()
    early = config.early_stopping
    early.enabled, early.monitor, early.patience, early.min_delta = True, "test_accuracy", 2, 0.1
    states = decide(config, [0.5, 0.55, 0.7, 0.75, 0.79, 0.9], "test_accuracy")
    assert [int(s.stopped_epoch) for s in states[:5]] == [0, 0, 0, 0, 5]
    assert float(states[2].early_best) == pytest.approx(0.7)


def test_the_lr_scale_multiplies_every_update():
    config = default_config()
    config.reduce_lr_on_plateau.enabled = True
    tx = optax.chain(optax.sgd(0.1), callbacks.transform(config))
    params = {"w": np.ones(3, np.float32)}
    state = tx.init(params)
    state = callbacks.with_state(state, callbacks.state_of(state)._replace(
        lr_scale=np.float32(0.25)))
    updates, _ = tx.update({"w": np.ones(3, np.float32)}, state)
    np.testing.assert_allclose(updates["w"], -0.025, rtol=1e-6)
    assert callbacks.lr_scale(state) == 0.25 and not callbacks.stopped(state)


@pytest.mark.parametrize("field,value,expected", [
    ("monitor", "val_loss", "config.early_stopping.monitor='val_loss' is not one of"),
    ("patience", -1, "config.early_stopping.patience=-1 must be >= 0"),
])
def test_bad_callback_settings_are_named(field, value, expected):
    config = default_config()
    config.early_stopping[field] = value
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        validate(config)


@pytest.mark.slow
def test_early_stopping_ends_the_run_with_the_best_epochs_weights(tiny_data_dir, tmp_path):
    config = tiny_config(tiny_data_dir, num_epochs=6)
    early = config.early_stopping
    # No epoch can beat the first by 2: patience 1 stops after epoch 2.
    early.enabled, early.monitor, early.patience, early.min_delta = True, "test_loss", 1, 2.0
    train_loop.train_and_evaluate(config, str(tmp_path))
    rows = read_metrics(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2]
    last, tree = final_params(tmp_path)
    assert last == 8  # Epoch 2's step, holding the best epoch's weights:
    best = 4 if rows[0]["test_loss"] <= rows[1]["test_loss"] else 8
    import orbax.checkpoint as ocp

    args = ocp.args.StandardRestore(
        fallback_sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as ckptr:
        epoch_best = ckptr.restore(tmp_path / "checkpoints" / str(best) / "default", args=args)
    for a, b in zip(jax.tree.leaves(tree["params"]), jax.tree.leaves(epoch_best["params"])):
        np.testing.assert_array_equal(a, b)
    train_loop.train_and_evaluate(config, str(tmp_path))  # Run again: stays stopped.
    assert len(read_metrics(tmp_path)) == 2 and final_params(tmp_path)[0] == 8


@pytest.mark.slow
def test_a_run_killed_after_an_epoch_resumes_to_the_same_plateau_decisions(tiny_data_dir,
                                                                           tmp_path):
    """Killed right after epoch 2's line: its TensorBoard points are already on disk; the
    resumed run makes the whole run's lr decisions, ends with its parameters, and leaves
    one TensorBoard point and one metrics row per epoch."""
    # min_delta 10: only the first epoch improves; patience 0 halves the lr every epoch after.
    overrides = tiny_overrides(tiny_data_dir, **{
        "num_epochs": 4, "reduce_lr_on_plateau.enabled": True,
        "reduce_lr_on_plateau.patience": 0, "reduce_lr_on_plateau.factor": 0.5,
        "reduce_lr_on_plateau.min_delta": 10.0})
    whole = run_main(tmp_path / "whole", *overrides)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = run_main(tmp_path / "killed", *overrides, kill_after_epoch=2)
    assert killed.returncode == -9 and "epoch 2/4:" in killed.stderr, killed.stderr[-3000:]
    epoch_2 = read_metrics(tmp_path / "killed")[1]
    points = tensorboard_points(tmp_path / "killed" / "tensorboard")
    assert {tag for tag, step in points if step == epoch_2["step"]} >= {
        "train_loss", "test_accuracy", "learning_rate"}
    assert points[("test_loss", 16)] == pytest.approx(epoch_2["test_loss"])

    resumed = run_main(tmp_path / "killed", *overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lrs = [r["learning_rate"] for r in read_metrics(tmp_path / "whole")]
    # Each row's lr is the one its epoch trained with: halved after epochs 2 and 3.
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 5e-4, 2.5e-4], rtol=1e-5)
    rows = read_metrics(tmp_path / "killed")
    assert [r["learning_rate"] for r in rows] == lrs
    points = tensorboard_points(tmp_path / "killed" / "tensorboard")
    steps = sorted({step for tag, step in points if tag == "test_loss"})
    assert steps == [r["step"] for r in rows] == [8, 16, 24, 32]
    assert points[("test_loss", 32)] == pytest.approx(rows[-1]["test_loss"])
    _, a = final_params(tmp_path / "whole")
    _, b = final_params(tmp_path / "killed")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
