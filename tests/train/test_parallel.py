"""jit and pmap: the same steps, synced or per-device ("ghost") BatchNorm, the layers that
make them agree, and a run that changes mode when it resumes."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, tiny_config

from resnet_flax.cli import cluster
from resnet_flax.models import cross_device
from resnet_flax.run import train_loop


@pytest.fixture(scope="module")
def eight_device_runs(tmp_path_factory):
    """tests/train/jit_and_pmap_runs.py's four runs on 8 virtual devices, XLA's optimizer on (as
    main runs): {name: arrays}."""
    out = tmp_path_factory.mktemp("modes")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "0"}
    script = REPO / "tests" / "train" / "jit_and_pmap_runs.py"
    proc = subprocess.run([sys.executable, str(script), str(out)],
                          capture_output=True, text=True, env=env, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {p.stem: dict(np.load(p)) for p in out.glob("*.npz")}


def assert_same_run(a: dict, b: dict) -> None:
    """The runs train at lr 1e-4 (tests/train/jit_and_pmap_runs.py): at lr 0.05 jit and pmap's
    other reduction order grew, from an initialisation scaled by 1 + 2e-7, into a BatchNorm
    bias 1.1% apart after 3 steps; at 1e-4 the weights stay 2e-6 apart. The momentum sums
    the steps' gradients, where one rounding may flip a ReLU (8e-4 apart, relative to its
    norm); without the gradients' pmean it is 3.5x its norm apart. A BatchNorm bias
    starts at 0 and moves by ~1e-5, so for the weights 1e-6 apart also passes."""
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-5)
    assert a["test_loss"] == pytest.approx(float(b["test_loss"]), rel=1e-5)
    for key in a:  # Parameters, BatchNorm statistics, the EMA and the momentum of both.
        scale = np.linalg.norm(a[key]) + 1e-12
        gap = np.linalg.norm(a[key] - b[key])
        if key.startswith("opt_state/"):
            assert gap / scale < 1e-2, key
        else:
            assert gap / scale < 1e-4 or gap < 1e-6, key


@pytest.mark.slow
@pytest.mark.parametrize("stats", ["sync", "ghost"])
def test_jit_and_pmap_train_alike(eight_device_runs, stats):
    """BatchNorm, dropout 0.3, crop + flip, EMA and label smoothing on, 3 steps."""
    assert_same_run(eight_device_runs[f"jit_{stats}"], eight_device_runs[f"pmap_{stats}"])


@pytest.mark.slow
def test_ghost_batchnorm_is_per_device(eight_device_runs):
    sync, ghost = eight_device_runs["jit_sync"], eight_device_runs["jit_ghost"]
    assert sync["losses"][0] != pytest.approx(ghost["losses"][0], rel=1e-4)
    key = "batch_stats/bn1/var"
    assert np.abs(sync[key] - ghost[key]).max() > 1e-3


def test_ghost_batchnorm_normalises_each_slice_by_its_own_statistics():
    x = jnp.asarray(np.random.default_rng(0).normal(2.0, 3.0, (12, 5, 5, 4)), jnp.float32)
    ghost = cross_device.GhostBatchNorm(groups=3)
    variables = ghost.init(jax.random.key(0), x)
    y, stats = ghost.apply(variables, x, mutable=["batch_stats"])
    bn = nn.BatchNorm(use_running_average=False, momentum=0.9)
    means, variances = [], []
    for i in range(3):
        part = x[4 * i:4 * i + 4]
        ref, new = bn.apply(bn.init(jax.random.key(0), part), part, mutable=["batch_stats"])
        np.testing.assert_allclose(y[4 * i:4 * i + 4], ref, atol=2e-5)
        means.append(new["batch_stats"]["mean"])
        variances.append(new["batch_stats"]["var"])
    np.testing.assert_allclose(stats["batch_stats"]["mean"], np.mean(means, 0), rtol=1e-5)
    np.testing.assert_allclose(stats["batch_stats"]["var"], np.mean(variances, 0), rtol=1e-5)
    assert jax.tree.structure(variables) == jax.tree.structure(bn.init(jax.random.key(0), x))


def test_dropout_draws_what_flax_draws_and_pmap_keeps_its_rows():
    x = jnp.ones((8, 6), jnp.float32)
    rngs = {"dropout": jax.random.key(3)}
    ours = cross_device.Dropout(0.5, deterministic=False).apply({}, x, rngs=rngs)
    flax = nn.Dropout(0.5, deterministic=False).apply({}, x, rngs=rngs)
    np.testing.assert_array_equal(ours, flax)
    n = jax.device_count()
    split = jax.pmap(lambda part: cross_device.Dropout(0.5, deterministic=False, axis_name="d")
                     .apply({}, part, rngs=rngs), axis_name="d")(x.reshape(n, 8 // n, 6))
    np.testing.assert_array_equal(np.asarray(split).reshape(8, 6), ours)


@pytest.mark.slow
def test_a_run_resumes_in_the_other_mode(tiny_data_dir, tmp_path, optimized):
    """Checkpoints hold one unreplicated state: 1 epoch under jit, then 1 under pmap,
    equals 2 under jit."""
    straight = train_loop.train_and_evaluate(tiny_config(tiny_data_dir, num_epochs=2),
                                        str(tmp_path / "jit"))
    train_loop.train_and_evaluate(tiny_config(tiny_data_dir, num_epochs=1), str(tmp_path / "mix"))
    switched = train_loop.train_and_evaluate(
        tiny_config(tiny_data_dir, num_epochs=2, parallelism="pmap"), str(tmp_path / "mix"))
    assert switched["test_loss"] == pytest.approx(straight["test_loss"], rel=1e-4)
    assert switched["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-4)


# A task of an `srun` step, as SLURM 22.05 sets it (less its layout's variables).
SRUN = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_PROCID": "1",
        "SLURM_LOCALID": "1"}


@pytest.mark.parametrize("env,expected", [
    ({**SRUN, "SLURM_NTASKS": "4"}, "SLURM (4 tasks)"),
    ({**SRUN, "SLURM_NTASKS": "1"}, None),  # One task: nothing to join.
    # A batch script of a 4-task job (no srun): one process, nothing to join.
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"},
     None),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, "Open MPI (2 processes)"),
    ({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}, "Cloud TPU (4 hosts)"),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),
    ({}, None),
])
def test_a_cluster_launcher_is_recognised(env, expected):
    assert cluster.cluster_from_environment(env) == expected


def test_under_a_launcher_jax_distributed_reads_the_cluster_itself(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
    slurm = {**SRUN, "SLURM_NTASKS": "2"}
    assert cluster.join(None, 1, 0, env=slurm) == "SLURM (2 tasks)"
    # JAX reads the rest from SLURM; the heartbeat is the run's --peer_timeout.
    assert calls == [((), {"local_device_ids": None, "heartbeat_timeout_seconds": 20})]
    assert cluster.join(None, 1, 0, env={}) is None
    cluster.join("10.0.0.1:1234", 2, 1, env=slurm)  # Flags win.
    assert calls[-1] == (("10.0.0.1:1234", 2, 1), {"heartbeat_timeout_seconds": 20})


def test_a_batch_that_does_not_split_over_the_devices_is_a_config_error():
    from resnet_flax.config import ConfigError, default_config
    from resnet_flax.data import pipeline, sources

    split = pipeline.Split(np.zeros((8, 28, 28, 1), np.uint8), np.zeros(8, np.int32))
    config = default_config()
    config.batch_size = 3  # The tests run on 2 devices.
    with pytest.raises(ConfigError, match="config.batch_size=3 is not divisible by the 2 "
                                          "devices; use a multiple of 2"):
        train_loop.Trainer(config, sources.Device(split, split))
