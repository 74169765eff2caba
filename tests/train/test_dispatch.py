"""Several steps per dispatch (``config.steps_per_dispatch``) train bit for bit as the
step-by-step loop: parameters, optimizer state, metrics and the checkpoints' steps."""

import jax
import numpy as np
import pytest
from conftest import tiny_config
from runs import final_params, read_metrics

from resnet_flax.config import ConfigError
from resnet_flax.run import train_loop
from resnet_flax.run.validate import validate
from resnet_flax.train import chunks


def test_chunks_end_at_every_checkpoint_and_the_epochs_end():
    assert chunks.lengths(0, 16, 3, 5) == [3, 2, 3, 2, 3, 2, 1]
    assert chunks.lengths(8, 16, 4, 100) == [4, 4]
    assert chunks.lengths(7, 8, 4, 5) == [1]
    assert chunks.lengths(3, 3, 4, 5) == []


def _checkpoint_steps(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def _trained(tiny_data_dir, workdir, per_dispatch, checkpoint_every, **values):
    config = tiny_config(tiny_data_dir, batch_size=8, num_epochs=2, crop_padding=2,
                         random_flip=True, label_smoothing=0.1, ema_decay=0.9,
                         checkpoint_every_steps=checkpoint_every, keep_checkpoints=20,
                         steps_per_dispatch=per_dispatch, **values)
    config.model_options.dropout_rate = 0.2
    train_loop.train_and_evaluate(config, str(workdir))
    return workdir


def _rows(workdir):
    timing = ("time", "images_per_sec", "train_seconds", "compile_seconds")
    return [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(workdir)]


def _assert_same_params(a, b):
    (_, a), (_, b) = final_params(a), final_params(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("parallelism", ["jit", "pmap"])
def test_chunks_of_steps_train_as_one_step_a_dispatch(tiny_data_dir, tmp_path, optimized,
                                                      parallelism):
    """2 epochs of 8 steps on 2 devices, crops, flips, dropout, label smoothing and an EMA
    drawing per step: one step a dispatch (a checkpoint every step cuts every chunk to
    one), and chunks of 3 cut by checkpoints every 5 steps, train bit for bit alike."""
    one = _trained(tiny_data_dir, tmp_path / "one", 2, 1, parallelism=parallelism)
    chunked = _trained(tiny_data_dir, tmp_path / "chunked", 3, 5, parallelism=parallelism)
    assert _checkpoint_steps(chunked) == [5, 10, 15, 16]
    assert _rows(one) == _rows(chunked)
    _assert_same_params(one, chunked)


def test_chunks_train_the_lone_steps_run_to_rounding(tiny_data_dir, tmp_path, optimized):
    """XLA compiles a loop's body apart from a lone step: the same steps and draws, other
    rounding (a tiny net at lr 0.1 then drifts; at lr 1e-3 it stays within 1e-4)."""
    lone = _trained(tiny_data_dir, tmp_path / "lone", 1, 100, lr=1e-3)
    chunked = _trained(tiny_data_dir, tmp_path / "chunked", 4, 100, lr=1e-3)
    (_, a), (_, b) = final_params(lone), final_params(chunked)
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"]), strict=True):
        assert np.linalg.norm(x - y) <= 1e-4 * np.linalg.norm(x) + 1e-7


def test_a_chunked_run_resumes_exactly(tiny_data_dir, tmp_path, optimized):
    """Chunks of 2 for 2 epochs; chunks of 3 stopped after epoch 1 (step 8's checkpoint)
    and resumed for the second: the same parameters."""
    def config(epochs, per_dispatch):
        return tiny_config(tiny_data_dir, batch_size=8, num_epochs=epochs, crop_padding=2,
                           checkpoint_every_steps=5, steps_per_dispatch=per_dispatch)

    train_loop.train_and_evaluate(config(2, 2), str(tmp_path / "whole"))
    train_loop.train_and_evaluate(config(1, 3), str(tmp_path / "resumed"))
    train_loop.train_and_evaluate(config(2, 3), str(tmp_path / "resumed"))
    _assert_same_params(tmp_path / "whole", tmp_path / "resumed")


def test_steps_per_dispatch_needs_the_device_input(tiny_data_dir):
    config = tiny_config(tiny_data_dir, input="stream", steps_per_dispatch=4)
    with pytest.raises(ConfigError, match=r"config.steps_per_dispatch=4 needs "
                                          r"config.input='device'"):
        validate(config)
    with pytest.raises(ConfigError, match="steps_per_dispatch=0 must be >= 1"):
        validate(tiny_config(tiny_data_dir, steps_per_dispatch=0))
