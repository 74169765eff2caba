"""Helpers of the end-to-end tests: ``main`` and ``predict`` as subprocesses, and what a
run leaves in its workdir (checkpoints, metrics, TensorBoard events)."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO, TINY_TEST
from PIL import Image

from resnet_flax.data import tfds_source

CONFIG = str(REPO / "configs" / "fashion_mnist.py")

# Runs main as `python -m resnet_flax.main` does, SIGKILLing itself when asked to
# checkpoint step KILL_AT_STEP (once the previous checkpoint is complete; the steps since
# are lost, as in a real crash) or right after printing epoch KILL_AFTER_EPOCH's line, or
# sending itself SIGNAL right after step SIGNAL_AT_STEP.
_MAIN = """
import os, signal, sys
from resnet_flax.workdir import checkpoint, metrics
from resnet_flax import cli
from resnet_flax.cli import main
kill_at = int(os.environ.get("KILL_AT_STEP", -1))
if os.environ.get("KILL_PROCID", os.environ.get("SLURM_PROCID")) != os.environ.get("SLURM_PROCID"):
    kill_at = -1  # Under srun, only task KILL_PROCID dies.
kill_after = int(os.environ.get("KILL_AFTER_EPOCH", -1))
save, console = checkpoint.Checkpointer.save, metrics.console
def save_or_die(self, state, *args, **kwargs):
    if int(state.step) == kill_at:
        self._manager.wait_until_finished()  # The previous save is on disk: a known state.
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, state, *args, **kwargs)
def console_and_die(epoch, *args):
    console(epoch, *args)
    if epoch == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
checkpoint.Checkpointer.save = save_or_die
metrics.console = console_and_die
signal_at = int(os.environ.get("SIGNAL_AT_STEP", -1))
from resnet_flax.run import train_loop
train_steps = train_loop.Trainer.train_steps
def train_steps_signalled(self, epoch, first, on_step=None):
    def hook(step, sums):
        if step == signal_at:  # A real signal to this process, right after the step.
            os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL"]))
        on_step(step, sums)
    return train_steps(self, epoch, first, hook)
train_loop.Trainer.train_steps = train_steps_signalled
sys.argv[0] = "resnet_flax.main"
from absl import app
app.run(main.main, flags_parser=cli.parse_flags)
"""


# Run before _MAIN: SIGKILLs this process at the moment DIE_AT names (under srun: only
# task KILL_PROCID), saying so on stderr first; "step" and "save" are _MAIN's own.
_MOMENTS = """
import os, signal, sys, time
moment = os.environ.get("DIE_AT", "")
if os.environ.get("KILL_PROCID", os.environ.get("SLURM_PROCID")) != os.environ.get("SLURM_PROCID"):
    moment = ""
def die():
    print(f"dying at {moment}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
if moment == "start":  # Before the first step: compiling it.
    from resnet_flax.run import train_loop
    train_loop.Trainer.compile = lambda self: die()
elif moment == "step":  # Right after step 6 (no checkpoint due).
    os.environ.update(SIGNAL_AT_STEP="6", SIGNAL="SIGKILL")
elif moment == "save":  # As step 8's save begins, once step 4's is on disk.
    os.environ["KILL_AT_STEP"] = "8"
elif moment == "barrier":  # The other waits in step 8's save for this one, which dies.
    from resnet_flax.workdir import checkpoint
    save_before_barrier = checkpoint.Checkpointer.save
    def save_late_or_die(self, state, *args, **kwargs):
        if int(state.step) == 8:
            self._manager.wait_until_finished()
            time.sleep(1)
            die()
        return save_before_barrier(self, state, *args, **kwargs)
    checkpoint.Checkpointer.save = save_late_or_die
elif moment == "commit":  # Half a second into step 8's asynchronous commit.
    from orbax.checkpoint._src.checkpointers import async_checkpointer
    commit = async_checkpointer._background_wait_for_commit_futures
    def commit_or_die(directory, *args, **kwargs):
        if directory.name.split(".")[0] == "8":
            time.sleep(0.5)
            die()
        return commit(directory, *args, **kwargs)
    async_checkpointer._background_wait_for_commit_futures = commit_or_die
elif moment == "evaluation":  # The first epoch's evaluation.
    from resnet_flax.run import train_loop
    train_loop.Trainer.evaluate = lambda self: die()
"""


def without_tensorflow(env: dict | None = None) -> dict:
    """``env`` (default: this process's) in which every process, spawned workers too, runs
    as if TensorFlow were not installed."""
    env = dict(os.environ if env is None else env)
    paths = [str(REPO / "tests" / "no_tensorflow"), env.get("PYTHONPATH", "")]
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def run_main(workdir, *overrides, kill_at=None, kill_after_epoch=None, block_tensorflow=False,
             signal_at=None, signal_name="SIGTERM", config=CONFIG):
    """``main`` on ``workdir`` with ``config`` (None: no --config) and ``overrides``."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "KILL_AT_STEP": str(kill_at or -1),
           "KILL_AFTER_EPOCH": str(kill_after_epoch or -1),
           "SIGNAL_AT_STEP": str(signal_at or -1), "SIGNAL": signal_name}
    if block_tensorflow:
        env = without_tensorflow(env)
    args = [*(["--config", config] if config else []), "--workdir", str(workdir), *overrides]
    return subprocess.run([sys.executable, "-c", _MAIN, *args], capture_output=True,
                          text=True, env=env, timeout=600, cwd=REPO)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(workdir, overrides, num_processes: int, devices_each: int,
                  optimized: bool = False):
    """``main`` as ``num_processes`` processes on loopback, ``devices_each`` virtual CPU
    devices each (``optimized``: with XLA's optimizer, which the suite turns off)."""
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_each}",
           "JAX_DISABLE_MOST_OPTIMIZATIONS": "0" if optimized else "1"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "resnet_flax.main", "--config",
         str(REPO / "configs" / "fashion_mnist.py"), "--workdir", str(workdir), *overrides,
         f"--num_processes={num_processes}", f"--process_id={i}",
         f"--coordinator_address={address}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        for i in range(num_processes)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]


def assert_same_training(single, multi, atol=1e-5, rtol=1e-4):
    step_a, a = final_params(single)
    step_b, b = final_params(multi)
    assert step_a == step_b
    flat_a, flat_b = ocp.tree.to_flat_dict(a), ocp.tree.to_flat_dict(b)
    for key in set(flat_a) - {("digest",), ("input_position",)}:
        # Same math; the cross-process reductions may round differently.
        np.testing.assert_allclose(flat_a[key], flat_b[key], rtol=rtol, atol=atol,
                                   err_msg=str(key))
    assert len(read_metrics(multi)) == 1  # Only process 0 writes metrics.
    assert read_metrics(multi)[0]["test_accuracy"] == pytest.approx(
        read_metrics(single)[0]["test_accuracy"])


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


def run_predict(*args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "resnet_flax.predict", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def assert_predictions_score_as_the_runs_evaluation(workdir, tiny_data_dir, tmp_path):
    """Predicts the tiny test split, written as PNG files (plus a photo and a broken file),
    from ``workdir``'s latest checkpoint: the scores equal the run's last evaluation.
    Called by test_evaluate.py on its trained run (EMA and flip TTA on)."""
    images, labels = tfds_source.load_split("fashion_mnist", "test", str(tiny_data_dir),
                                            allow_download=False)
    folder = tmp_path / "test_images"
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(folder / f"{i:02d}.png")
    Image.fromarray(np.full((90, 60, 3), 128, np.uint8)).save(tmp_path / "photo.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG truncated")

    proc = run_predict("--workdir", workdir, "--json", "--top-k", "2", folder,
                    tmp_path / "broken.png", tmp_path / "photo.jpg")
    assert proc.returncode == 1  # One file could not be read; the others were classified.
    assert proc.stderr.splitlines() == [
        f"error: {tmp_path / 'broken.png'}: not a readable image (UnidentifiedImageError: "
        f"cannot identify image file '{tmp_path / 'broken.png'}')"]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(folder / f"{i:02d}.png") for i in
                                         range(TINY_TEST)] + [str(tmp_path / "photo.jpg")]
    for row in rows:
        first, second = row["top"]
        assert 1 >= first["probability"] >= second["probability"] >= 0
    names = tfds_source.class_names("fashion_mnist", str(tiny_data_dir))
    assert all(r["top"][0]["class"] == names[r["top"][0]["index"]] for r in rows)
    predicted = np.array([r["top"][0]["index"] for r in rows[:TINY_TEST]])
    # Lossless PNGs at the dataset's size: exactly the run's last evaluation.
    assert np.mean(predicted == labels) == pytest.approx(
        read_metrics(workdir)[-1]["test_accuracy"], abs=1e-6)
