"""The command line end to end on a tiny real TFDS dataset: outputs, resume, errors."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO, TINY_TRAIN, tiny_overrides

CONFIG = str(REPO / "configs" / "fashion_mnist.py")

# Runs main, but SIGKILLs itself when asked to checkpoint step KILL_AT_STEP (the
# previous checkpoint survives and the steps since are lost, as in a real crash), or
# right after printing epoch KILL_AFTER_EPOCH's line.
_KILLING_MAIN = """
import os, signal, sys
from resnet_flax import checkpoint, main, metrics
kill_at = int(os.environ.get("KILL_AT_STEP", -1))
kill_after = int(os.environ.get("KILL_AFTER_EPOCH", -1))
save, console = checkpoint.Checkpointer.save, metrics.console
def save_or_die(self, state, force=False):
    if int(state.step) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, state, force)
def console_and_die(epoch, *args):
    console(epoch, *args)
    if epoch == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
checkpoint.Checkpointer.save = save_or_die
metrics.console = console_and_die
sys.argv[0] = "resnet_flax.main"
from absl import app
app.run(main.main)
"""


def run_main(workdir, *overrides, kill_at=None, kill_after_epoch=None, env_extra=None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env_extra or {})}
    args = ["--config", CONFIG, "--workdir", str(workdir), *overrides]
    if kill_at is None and kill_after_epoch is None:
        cmd = [sys.executable, "-m", "resnet_flax.main", *args]
    else:
        env["KILL_AT_STEP"] = str(kill_at if kill_at is not None else -1)
        env["KILL_AFTER_EPOCH"] = str(kill_after_epoch or -1)
        cmd = [sys.executable, "-c", _KILLING_MAIN, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                          cwd=REPO)


def final_params(workdir):
    ckpt_dir = workdir / "checkpoints"
    last = max(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())
    # Saved on any topology (several processes too): restore onto this one device.
    args = ocp.args.StandardRestore(
        fallback_sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as ckptr:
        tree = ckptr.restore(ckpt_dir / str(last) / "default", args=args)
    return last, tree


def read_metrics(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tiny_data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    proc = run_main(workdir, *tiny_overrides(tiny_data_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def test_main_writes_checkpoints_metrics_events_and_config(uninterrupted):
    steps_per_epoch = TINY_TRAIN // 8
    records = read_metrics(uninterrupted)
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [steps_per_epoch, 2 * steps_per_epoch]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy",
                "learning_rate", "images_per_sec"):
        assert np.isfinite(records[-1][key]), key
    assert records[-1]["learning_rate"] == pytest.approx(1e-3)
    events = list((uninterrupted / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    config = json.loads((uninterrupted / "config.json").read_text())
    assert config["batch_size"] == 8 and config["model"] == "fashion_mnist_resnet"
    last, _ = final_params(uninterrupted)
    assert last == 2 * steps_per_epoch


def test_killed_then_resumed_equals_uninterrupted(uninterrupted, tiny_data_dir, tmp_path):
    overrides = tiny_overrides(tiny_data_dir)
    killed = run_main(tmp_path, *overrides, kill_at=12)
    assert killed.returncode == -9, killed.stderr[-3000:]
    # Saves are asynchronous: step 8's may still have been in flight, then step 4's is
    # the latest complete one. Either way the steps after it were lost.
    assert final_params(tmp_path)[0] in (4, 8)
    resumed = run_main(tmp_path, *overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
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
def test_ema_and_flip_tta_run_and_resume_exactly(tiny_data_dir, tmp_path):
    overrides = tiny_overrides(tiny_data_dir, ema_decay=0.9, tta_flip=True)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_main(whole, *overrides).returncode == 0
    assert run_main(cut, *overrides, kill_at=12).returncode == -9
    resumed = run_main(cut, *overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    (_, a), (_, b) = final_params(whole), final_params(cut)
    assert set(a["ema"]) == {"params", "batch_stats"}
    flat_a, flat_b = ocp.tree.to_flat_dict(a), ocp.tree.to_flat_dict(b)
    assert flat_a.keys() == flat_b.keys()
    for key in flat_a:
        np.testing.assert_array_equal(flat_a[key], flat_b[key], err_msg=str(key))
    last = read_metrics(whole)[-1]
    for key in ("test_accuracy", "test_live_accuracy", "test_live_loss", "train_seconds"):
        assert np.isfinite(last[key]), key
    assert last["test_loss"] != last["test_live_loss"]  # The EMA model is evaluated.
    assert read_metrics(cut)[-1]["test_loss"] == last["test_loss"]


def test_training_does_not_need_tensorflow(tiny_data_dir, tmp_path):
    code = (
        # As if TensorFlow were not installed: find_spec says None, import fails.
        "import importlib.util, sys\n"
        "is_tf = lambda name: name.split('.')[0] == 'tensorflow'\n"
        "find_spec = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, p=None: None if is_tf(n) else find_spec(n, p)\n"
        "class NoTensorFlow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if is_tf(name):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoTensorFlow())\n"
        "from resnet_flax import train\n"
        "from resnet_flax.config import default_config\n"
        f"c = default_config(); c.data_dir = {str(tiny_data_dir)!r}; c.batch_size = 8\n"
        "c.eval_batch_size = 8; c.num_epochs = 1; c.progress_bar = False\n"
        "c.model_options.width_multiplier = 0.25\n"
        f"m = train.train_and_evaluate(c, {str(tmp_path)!r})\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print('accuracy', m['test_accuracy'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accuracy" in proc.stdout


def _snapshot(workdir):
    return {p.relative_to(workdir): p.read_bytes() for p in sorted(workdir.rglob("*"))
            if p.is_file()}


def test_resume_with_another_config_is_refused_and_extending_is_recorded(tiny_data_dir,
                                                                         tmp_path):
    overrides = tiny_overrides(tiny_data_dir, num_epochs=1)
    assert run_main(tmp_path, *overrides).returncode == 0
    before = _snapshot(tmp_path)
    refused = run_main(tmp_path, *overrides, "--config.lr=0.05", "--config.batch_size=16")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert "batch_size 8 -> 16, lr 0.001 -> 0.05" in refused.stderr
    assert _snapshot(tmp_path) == before  # Nothing written, nothing lost.

    extended = run_main(tmp_path, *tiny_overrides(tiny_data_dir, num_epochs=2))
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]
    change = json.loads((tmp_path / "config_changes.jsonl").read_text())
    assert change["step"] == TINY_TRAIN // 8
    assert change["changes"] == {"num_epochs": {"from": 1, "to": 2}}


def test_a_garbled_latest_checkpoint_is_set_aside_and_the_run_resumes(tiny_data_dir, tmp_path):
    overrides = tiny_overrides(tiny_data_dir, num_epochs=1)  # Saves at steps 4 and 8.
    assert run_main(tmp_path, *overrides).returncode == 0
    latest = tmp_path / "checkpoints" / "8"
    data = max((p for p in latest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    resumed = run_main(tmp_path, *tiny_overrides(tiny_data_dir, num_epochs=2))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    warnings = [ln for ln in resumed.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "corrupt checkpoint (step 8: " in warnings[0]
    # Orbax's own account of the failed reads goes beside the step, not on the console.
    assert "Traceback" not in resumed.stderr and "Exception ignored" not in resumed.stderr
    assert (tmp_path / "checkpoints_corrupt" / "8" / "restore_errors.log").is_file()
    assert (tmp_path / "checkpoints_corrupt" / "8").is_dir()
    records = read_metrics(tmp_path)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["resumed_at_step"] == 4 and final_params(tmp_path)[0] == 16


def tensorboard_points(logdir):
    """{(tag, step): value} as TensorBoard shows it: event files in name order, each
    SessionLog START at step S hiding the points before it at steps >= S."""
    import struct

    from tensorboardX.proto.event_pb2 import Event, SessionLog

    points = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4  # length, its crc, the event, its crc.
            if event.session_log.status == SessionLog.START:
                points = {k: v for k, v in points.items() if k[1] < event.step}
            for value in event.summary.value:
                points[(value.tag, event.step)] = value.simple_value
    return points


def test_an_epochs_tensorboard_points_are_on_disk_when_its_line_is_printed(tiny_data_dir,
                                                                            tmp_path):
    overrides = tiny_overrides(tiny_data_dir)
    killed = run_main(tmp_path, *overrides, kill_after_epoch=1)
    assert killed.returncode == -9 and "epoch 1/2:" in killed.stderr, killed.stderr[-3000:]
    epoch_1 = read_metrics(tmp_path)[0]
    points = tensorboard_points(tmp_path / "tensorboard")
    assert {tag for tag, step in points if step == epoch_1["step"]} >= {
        "train_loss", "test_accuracy", "learning_rate"}
    assert points[("test_loss", 8)] == pytest.approx(epoch_1["test_loss"])

    resumed = run_main(tmp_path, *overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    points = tensorboard_points(tmp_path / "tensorboard")
    steps = sorted({step for tag, step in points if tag == "test_loss"})
    assert steps == [r["step"] for r in read_metrics(tmp_path)] == [8, 16]
    assert points[("test_loss", 16)] == pytest.approx(read_metrics(tmp_path)[1]["test_loss"])
