"""Checkpointer: round trip, and resuming with the EMA switched on or off."""

import json

import jax
import numpy as np
import optax
import pytest

from resnet_flax import models
from resnet_flax.train import state as state_lib
from resnet_flax.workdir import checkpoint


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


def _saved_steps(tmp_path, state, steps=(5, 6)):
    ckpt = checkpoint.Checkpointer(str(tmp_path), every_steps=1, keep=3)
    for step in steps:
        ckpt.save(state.replace(step=state.step + step,
                                params=jax.tree.map(lambda x, s=step: x + s, state.params)),
                  force=True)
    ckpt.close()
    return checkpoint.Checkpointer(str(tmp_path), every_steps=1, keep=3)


def _largest_file(directory):
    return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _garble(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 256] = np.random.default_rng(0).bytes(256)
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [_garble, _truncate])
def test_a_corrupt_latest_step_is_moved_aside_and_the_previous_one_used(tmp_path, damage,
                                                                        capsys):
    src = make_state(ema=True, seed=1)
    ckpt = _saved_steps(tmp_path, src)
    damage(_largest_file(tmp_path / "checkpoints" / "6"))
    restored = ckpt.restore_latest(make_state(ema=True, seed=2))
    assert int(restored.step) == 5
    assert_trees_equal(restored.params, jax.tree.map(lambda x: x + 5, src.params))
    assert (tmp_path / "checkpoints_corrupt" / "6").is_dir()
    assert not (tmp_path / "checkpoints" / "6").exists() and ckpt.latest_step() == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: corrupt checkpoint (step 6: ")
    assert err[0].endswith("; resumed from step 5")
    ckpt.close()


def test_no_good_step_stops_with_one_line(tmp_path):
    ckpt = _saved_steps(tmp_path, make_state(ema=False), steps=(5,))
    _garble(_largest_file(tmp_path / "checkpoints" / "5"))
    with pytest.raises(checkpoint.CheckpointError, match="no good checkpoint in .*"
                       "every step was corrupt .step 5: .*checkpoints_corrupt .*use a new "
                       "--workdir"):
        ckpt.restore_latest(make_state(ema=False))
    assert (tmp_path / "checkpoints_corrupt" / "5").is_dir()  # Moved, never deleted.


def test_a_step_whose_arrays_differ_from_its_digest_is_corrupt(tmp_path):
    state = make_state(ema=False)
    ckpt = _saved_steps(tmp_path, state, steps=(5,))
    tree = checkpoint._tree(state.replace(step=state.step + 6))
    tree["digest"] = np.zeros(32, np.uint8)  # Finite values, wrong digest.
    ckpt._manager.save(6, args=checkpoint.ocp.args.StandardSave(tree), force=True)
    ckpt._manager.wait_until_finished()
    assert int(ckpt.restore_latest(make_state(ema=False)).step) == 5
    assert (tmp_path / "checkpoints_corrupt" / "6").is_dir()


def test_a_checkpoint_from_before_digests_still_restores(tmp_path):
    state = make_state(ema=False, seed=1)
    ckpt = checkpoint.Checkpointer(str(tmp_path), every_steps=1, keep=2)
    tree = checkpoint._tree(state.replace(step=state.step + 3))
    ckpt._manager.save(3, args=checkpoint.ocp.args.StandardSave(tree), force=True)
    ckpt._manager.wait_until_finished()
    restored = ckpt.restore_latest(make_state(ema=False, seed=2))
    assert int(restored.step) == 3
    assert_trees_equal(restored.params, state.params)


def test_another_models_checkpoints_are_refused_and_left_in_place(tmp_path):
    ckpt = _saved_steps(tmp_path, make_state(ema=False), steps=(5,))
    wider = models.create("cifar_resnet4", num_classes=10, width_multiplier=0.5)
    other = state_lib.create(wider, optax.sgd(0.1, momentum=0.9), jax.random.key(0), (8, 8, 3))
    with pytest.raises(checkpoint.CheckpointError, match=r"holds another model's checkpoints "
                       r"\(.* of other shapes, e.g. params\['bn1'\]\['bias'\] \(16,\) there "
                       r"vs \(32,\)\); use a new --workdir"):
        ckpt.restore_latest(other)
    assert (tmp_path / "checkpoints" / "5").is_dir()
    assert not (tmp_path / "checkpoints_corrupt").exists()


@pytest.mark.parametrize("field", ["params", "batch_stats", "opt_state", "ema"])
def test_a_non_finite_state_is_never_saved(tmp_path, field):
    state = make_state(ema=True)
    tree = getattr(state, field)
    leaves, treedef = jax.tree.flatten(tree)
    index = next(i for i, x in enumerate(leaves) if x.size > 1 and x.dtype.kind == "f")
    leaves[index] = leaves[index].at[0].set(np.nan)
    bad = state.replace(**{field: jax.tree.unflatten(treedef, leaves)}, step=state.step + 4)
    ckpt = checkpoint.Checkpointer(str(tmp_path), every_steps=1, keep=2)
    with pytest.raises(FloatingPointError, match=rf"non-finite values in \['{field}'\].* at "
                       "step 4: not checkpointed; no checkpoint yet. Likely causes: too high"):
        ckpt.save(bad, force=True)
    ckpt.close()
    assert not any((tmp_path / "checkpoints").glob("4"))


def test_metric_rows_past_the_restored_step_are_dropped(tmp_path):
    from resnet_flax.workdir import metrics

    writer = metrics.MetricWriter(str(tmp_path))
    for step in (8, 16, 24):
        writer.write(step, {"epoch": step // 8, "test_accuracy": 0.5})
    writer.close()
    writer = metrics.MetricWriter(str(tmp_path), resume_step=16)  # Checkpoint 24 was lost.
    writer.write(24, {"epoch": 3, "test_accuracy": 0.6})
    writer.close()
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["test_accuracy"]) for r in rows] == [(8, 0.5), (16, 0.5), (24, 0.6)]
    metrics.MetricWriter(str(tmp_path), resume_step=0).close()  # No checkpoint survived.
    assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_curves_are_redrawn_at_most_every_interval_and_at_the_end(tmp_path, monkeypatch):
    from resnet_flax.workdir import metrics

    def epoch(n):
        return {"epoch": n, "train_loss": 2 / n, "train_accuracy": 0.1 * n, "test_loss": 2 / n,
                "test_accuracy": 0.1 * n, "learning_rate": 0.1}

    curves = tmp_path / "curves.png"
    writer = metrics.MetricWriter(str(tmp_path))
    writer.write(8, epoch(1))
    assert not curves.exists()  # CURVES_EVERY_S have not passed since the run started.
    monkeypatch.setattr(metrics, "CURVES_EVERY_S", 0.0)
    writer.write(16, epoch(2))
    two_epochs = curves.read_bytes()
    monkeypatch.setattr(metrics, "CURVES_EVERY_S", 1e9)
    writer.write(24, epoch(3))
    assert curves.read_bytes() == two_epochs
    writer.close()  # The end of the run draws every epoch.
    assert curves.read_bytes() != two_epochs


def test_the_best_epoch_is_kept_beside_the_latest_and_survives_a_resume(tmp_path):
    state = make_state(ema=False)

    def manager():
        return checkpoint.Checkpointer(str(tmp_path), every_steps=1, keep=1,
                                       best_metric="test_accuracy")

    ckpt = manager()
    # Epoch ends carry metrics; the steps between them (mid-epoch saves) do not.
    for step, accuracy in ((1, None), (2, 0.9), (3, None), (4, 0.5), (5, None)):
        metrics = None if accuracy is None else {"test_accuracy": accuracy, "epoch": step}
        ckpt.save(state.replace(step=step), force=True, metrics=metrics)
    ckpt.close()
    ckpt = manager()
    assert (ckpt.all_steps(), ckpt.best_step()) == ([2, 5], 2)  # The best, and the latest.
    ckpt.save(state.replace(step=6), force=True, metrics={"test_accuracy": 0.95})
    ckpt.close()
    assert (manager().all_steps(), manager().best_step()) == ([6], 6)
    read_only = checkpoint.Checkpointer(str(tmp_path), read_only=True,
                                        best_metric="test_accuracy")
    assert read_only.best_step() == 6
    lowest = checkpoint.Checkpointer(str(tmp_path / "loss"), keep=1, best_metric="test_loss")
    for step, loss in ((1, 0.3), (2, 0.7)):
        lowest.save(state.replace(step=step), force=True, metrics={"test_loss": loss})
    lowest.close()
    assert lowest.best_step() == 1 and lowest.all_steps() == [1, 2]
