"""Two real processes (jax.distributed over loopback, gloo collectives) train one model."""

import pytest
from conftest import tiny_overrides
from runs import assert_same_training, run_processes


@pytest.mark.slow
def test_two_processes_match_one_process_with_two_devices(tiny_data_dir, tmp_path,
                                                          one_epoch_run):
    """one_epoch_run is these overrides in one process with two virtual devices."""
    overrides = tiny_overrides(tiny_data_dir, num_epochs=1)
    run_processes(tmp_path / "multi", overrides, num_processes=2, devices_each=1)
    assert_same_training(one_epoch_run, tmp_path / "multi")


@pytest.mark.slow
def test_two_streaming_processes_each_reading_its_half_train_as_one_process(
        tiny_data_dir, tmp_path):
    """2 processes x 1 device, each reading only its rows of every global batch (and of
    every eval batch) with its own Grain worker, against 1 process x 2 devices: the same
    shards reduced in the same order, so the same training bit for bit.

    Layouts that reduce in another order cannot show that: 1 process x 4 devices sums
    BatchNorm's partial statistics in another order than 2 x 2 or 4 x 1 (which agree bit
    for bit), and on this data a last-bit difference flips a ReLU whose input is about 0
    in the first step (layer1_0's gradients 3% apart, the layers after it equal)."""
    overrides = tiny_overrides(tiny_data_dir, num_epochs=1, input="stream", input_workers=1,
                               optimizer="sgd", lr=1e-4,
                               eval_batch_size=12)  # 23 test images: 2 batches, 1 padded.
    run_processes(tmp_path / "single", overrides, 1, devices_each=2, optimized=True)
    run_processes(tmp_path / "multi", overrides, 2, devices_each=1, optimized=True)
    assert_same_training(tmp_path / "single", tmp_path / "multi", atol=0.0, rtol=0.0)
