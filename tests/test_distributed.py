"""Two real processes (jax.distributed over loopback, gloo collectives) train one model."""

import os
import socket
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO, tiny_overrides
from test_train import final_params, read_metrics, run_main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process_with_two_devices(tiny_data_dir, tmp_path):
    overrides = tiny_overrides(tiny_data_dir, num_epochs=1)
    single = tmp_path / "single"
    proc = run_main(single, *overrides)  # One process, two virtual devices.
    assert proc.returncode == 0, proc.stderr[-3000:]

    multi = tmp_path / "multi"
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "resnet_flax.main", "--config",
         str(REPO / "configs" / "fashion_mnist.py"), "--workdir", str(multi), *overrides,
         "--num_processes=2", f"--process_id={i}", f"--coordinator_address={address}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]

    step_a, a = final_params(single)
    step_b, b = final_params(multi)
    assert step_a == step_b
    flat_a, flat_b = ocp.tree.to_flat_dict(a), ocp.tree.to_flat_dict(b)
    for key in flat_a:  # Same math; the cross-process reductions may round differently.
        np.testing.assert_allclose(flat_a[key], flat_b[key], rtol=1e-4, atol=1e-5,
                                   err_msg=str(key))
    assert len(read_metrics(multi)) == 1  # Only process 0 writes metrics.
    assert read_metrics(multi)[0]["test_accuracy"] == pytest.approx(
        read_metrics(single)[0]["test_accuracy"])
