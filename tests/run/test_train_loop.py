"""The command line end to end on a tiny real TFDS dataset: outputs, resume, errors."""

import json
import shutil
import signal

import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import TINY_TRAIN, tiny_overrides
from runs import final_params, read_metrics, run_main

# The EMA and flip TTA on in the run the resumed ones must equal: its "test" figures are
# the EMA's (mirrored too), "test_live" the trained weights'; both must resume exactly.
EMA_TTA = {"ema_decay": 0.9, "tta_flip": True}


def ema_tta_overrides(data_dir, **extra) -> list[str]:
    return tiny_overrides(data_dir, **EMA_TTA, **extra)


@pytest.fixture(scope="module")
def uninterrupted(tiny_data_dir, tmp_path_factory):
    """Two epochs of the tiny recipe with the EMA and flip TTA, trained as if TensorFlow
    were not installed."""
    workdir = tmp_path_factory.mktemp("run")
    proc = run_main(workdir, *ema_tta_overrides(tiny_data_dir), block_tensorflow=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_main_writes_checkpoints_metrics_events_and_config(uninterrupted):
    steps_per_epoch = TINY_TRAIN // 8
    records = read_metrics(uninterrupted)
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [steps_per_epoch, 2 * steps_per_epoch]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy",
                "test_live_loss", "test_live_accuracy", "learning_rate", "images_per_sec",
                "train_seconds"):
        assert np.isfinite(records[-1][key]), key
    assert records[-1]["test_loss"] != records[-1]["test_live_loss"]  # The EMA is evaluated.
    assert records[-1]["learning_rate"] == pytest.approx(1e-3)
    events = list((uninterrupted / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    config = json.loads((uninterrupted / "config.json").read_text())
    assert config["batch_size"] == 8 and config["model"] == "fashion_mnist_resnet"
    from PIL import Image

    with Image.open(uninterrupted / "curves.png") as curves:  # Loss, accuracy, lr panels.
        assert curves.format == "PNG" and curves.size == (1300, 440)
    assert not list(uninterrupted.glob("*.tmp.png"))
    last, saved = final_params(uninterrupted)
    assert last == 2 * steps_per_epoch and set(saved["ema"]) == {"params", "batch_stats"}


@pytest.mark.slow
def test_killed_then_resumed_equals_uninterrupted(uninterrupted, tiny_data_dir, tmp_path):
    """Killed mid-epoch 2, after the step-8 checkpoint: steps 9-12 are lost and redone,
    and the parameters, statistics, optimizer moments and EMA end as if never killed."""
    overrides = ema_tta_overrides(tiny_data_dir)
    killed = run_main(tmp_path, *overrides, kill_at=12)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert final_params(tmp_path)[0] == 8  # The steps after it were lost.
    resumed = run_main(tmp_path, *overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {tmp_path} from step 8 of 16 (epoch 2)" in resumed.stderr
    closing = resumed.stderr.strip().splitlines()[-1]
    assert closing.startswith("done in ") and "final test_accuracy 0." in closing
    assert f"checkpoints/ are in {tmp_path}" in closing
    again = run_main(tmp_path, *overrides)  # Finished: says so, and scores it again.
    assert again.returncode == 0 and f"{tmp_path} has finished its 2 epochs (16 steps)" in \
        again.stderr and "done in " in again.stderr
    records = read_metrics(tmp_path)  # One row per epoch: none left from before the kill.
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0].get("resumed_at_step") in (None, 4)  # Resumed mid-epoch 1 from step 4.

    step_a, a = final_params(uninterrupted)
    step_b, b = final_params(tmp_path)
    assert step_a == step_b
    flat_a, flat_b = ocp.tree.to_flat_dict(a), ocp.tree.to_flat_dict(b)
    assert flat_a.keys() == flat_b.keys()
    for key in flat_a:
        np.testing.assert_array_equal(flat_a[key], flat_b[key], err_msg=str(key))
    assert read_metrics(tmp_path)[-1]["test_loss"] == read_metrics(uninterrupted)[-1][
        "test_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name,step", [("SIGTERM", 6), ("SIGINT", 8)])
def test_a_signalled_run_saves_its_step_and_resumes_as_if_never_stopped(
        uninterrupted, tiny_data_dir, tmp_path, signal_name, step):
    """A scheduler's SIGTERM mid-epoch (step 6; checkpoints every 4) or Ctrl-C at an
    epoch's end (step 8, after its row): the step is saved, nothing is lost."""
    overrides = ema_tta_overrides(tiny_data_dir)
    stopped = run_main(tmp_path, *overrides, signal_at=step, signal_name=signal_name)
    signum = getattr(signal, signal_name)
    assert stopped.returncode == 128 + signum, stopped.stderr[-3000:]
    assert stopped.stderr.splitlines()[-1] == (
        f"stopped by {signal_name} after step {step}: checkpoint {step} saved in "
        f"{tmp_path / 'checkpoints'}; run the same command to resume")
    assert final_params(tmp_path)[0] == step
    resumed = run_main(tmp_path, *overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]
    (_, a), (_, b) = final_params(uninterrupted), final_params(tmp_path)
    flat_a, flat_b = ocp.tree.to_flat_dict(a), ocp.tree.to_flat_dict(b)
    for key in flat_a.keys() - {("input_position",)}:
        np.testing.assert_array_equal(flat_a[key], flat_b[key], err_msg=str(key))


@pytest.mark.slow
def test_a_stream_run_killed_and_resumed_trains_the_device_runs_model(uninterrupted,
                                                                      tiny_data_dir, tmp_path):
    """The stream input, read by two Grain worker processes without TensorFlow, killed
    mid-epoch and resumed from the iterator state saved with the checkpoint, ends with
    exactly the parameters of the uninterrupted run on whole splits in device memory."""
    overrides = ema_tta_overrides(tiny_data_dir, input="stream", input_workers=2)
    killed = run_main(tmp_path, *overrides, kill_at=8, block_tensorflow=True)
    assert killed.returncode == -9, killed.stderr[-3000:]
    step, saved = final_params(tmp_path)
    assert step == 4  # Mid-epoch 1 (8 steps an epoch): the resume continues Grain's iterator.
    position = json.loads(bytes(saved["input_position"]))
    assert position["step"] == 4 and position["offset"] == 0 and position["grain"]
    resumed = run_main(tmp_path, *overrides, block_tensorflow=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]
    for noise in ("OpenCV", "leaked shared_memory"):  # From the workers, at exit.
        assert noise not in resumed.stderr, resumed.stderr[-3000:]

    step_a, a = final_params(uninterrupted)
    step_b, b = final_params(tmp_path)
    assert step_a == step_b
    flat_a, flat_b = ocp.tree.to_flat_dict(a), ocp.tree.to_flat_dict(b)
    assert set(flat_b) - set(flat_a) == {("input_position",)}
    for key in set(flat_a) - {("digest",)}:  # The digest covers the input position too.
        np.testing.assert_array_equal(flat_a[key], flat_b[key], err_msg=str(key))
    assert read_metrics(tmp_path)[-1]["test_loss"] == read_metrics(uninterrupted)[-1][
        "test_loss"]


@pytest.mark.slow
def test_a_corrupt_latest_step_is_set_aside_and_an_extension_is_recorded(uninterrupted,
                                                                         tiny_data_dir,
                                                                         tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(uninterrupted, workdir)  # Two epochs; steps 8, 12 and 16 kept.
    latest = workdir / "checkpoints" / "16"
    data = max((p for p in latest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    resumed = run_main(workdir, *ema_tta_overrides(tiny_data_dir, num_epochs=3))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    warnings = [ln for ln in resumed.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "corrupt checkpoint (step 16: " in warnings[0]
    # Orbax's own account of the failed reads goes beside the step, not on the console.
    assert "Traceback" not in resumed.stderr and "Exception ignored" not in resumed.stderr
    assert (workdir / "checkpoints_corrupt" / "16" / "restore_errors.log").is_file()
    records = read_metrics(workdir)  # One row per epoch; epoch 2 resumed mid-way.
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[1]["resumed_at_step"] == 12 and final_params(workdir)[0] == 24
    change = json.loads((workdir / "config_changes.jsonl").read_text())
    assert change == {**change, "step": 12, "changes": {"num_epochs": {"from": 2, "to": 3}}}


def test_a_batch_larger_than_the_training_set_is_one_line(tiny_data_dir, tmp_path):
    proc = run_main(tmp_path, *tiny_overrides(tiny_data_dir, batch_size=2 * TINY_TRAIN))
    assert proc.returncode == 2
    assert proc.stderr == (f"error: config.batch_size={2 * TINY_TRAIN} exceeds the "
                           f"{TINY_TRAIN} training examples: give at most {TINY_TRAIN}\n")


@pytest.mark.slow
def test_a_diverging_run_is_stopped_within_steps_not_at_the_epochs_end(tiny_data_dir,
                                                                         tmp_path):
    from conftest import tiny_config

    from resnet_flax.run import train_loop

    config = tiny_config(tiny_data_dir, batch_size=2, lr=1e6, checkpoint_every_steps=1000)
    with pytest.raises(FloatingPointError) as err:  # 32 steps an epoch.
        train_loop.train_and_evaluate(config, str(tmp_path))
    step = int(str(err.value).split("by step ")[1].split(";")[0])
    assert step < TINY_TRAIN // 2, str(err.value)
    assert "; no checkpoint yet. Likely causes: too high a config.lr" in str(err.value)


@pytest.mark.slow
def test_statistics_that_overflow_while_the_loss_stays_finite_stop_the_run(tiny_data_dir,
                                                                          tmp_path):
    """lr 1e30 at batch 8: the loss stays finite, the gradients and BatchNorm's running
    statistics do not; the run stops at the first epoch's end, not after 20 epochs."""
    from conftest import tiny_config

    from resnet_flax.run import train_loop

    config = tiny_config(tiny_data_dir, lr=1e30, batch_size=8, num_epochs=20,
                         checkpoint_every_steps=1000)
    with pytest.raises(FloatingPointError, match="non-finite training loss, gradients or "
                                                 "BatchNorm statistics by step 8;"):
        train_loop.train_and_evaluate(config, str(tmp_path))


def test_each_epochs_finished_bar_stays_above_its_summary_line(capsys):
    from resnet_flax.run import train_loop
    from resnet_flax.workdir import metrics

    for epoch in range(2):
        first = 2 if epoch == 0 else 0  # Resumed mid-epoch: the bar starts at step 2.
        assert list(train_loop.progress_bar(iter(range(first, 5)), epoch, 2, first, 5)) == list(
            range(first, 5))
        metrics.console(epoch + 1, 2, {"test_accuracy": 0.5})
    assert list(train_loop.progress_bar(iter(range(5)), 0, 2, 0, 5, enabled=False)) == list(
        range(5))
    err = capsys.readouterr().err
    # Each line as a terminal shows it: what follows the last carriage return.
    lines = [line.rsplit("\r", 1)[-1] for line in err.split("\n") if line.strip()]
    assert len(lines) == 4, err
    assert lines[0].startswith("epoch 1/2 train: 100%") and "| 5/5 [" in lines[0]
    assert lines[1] == "epoch 1/2: test_accuracy=0.5"
    assert lines[2].startswith("epoch 2/2 train: 100%") and "| 5/5 [" in lines[2]
    assert lines[3] == "epoch 2/2: test_accuracy=0.5"
