"""One set-up of the process for every command: the same XLA flags, cache and quieting."""

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

from resnet_flax.cli import setup


def started_with(args) -> str:
    """The XLA flags a command set up before its first real work (it then fails on
    purpose: every run here stops at a missing checkpoint, workdir or dataset)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(RESNET_FLAX_VERBOSE="1", RESNET_FLAX_COMPILE_CACHE="0", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)
    found = re.findall(r"^set-up: XLA_FLAGS='([^']*)'", proc.stderr, re.M)
    assert len(found) == 1, proc.stderr[-2000:]
    return found[0]


@pytest.mark.slow
def test_main_experiments_predict_and_the_benchmark_start_with_the_same_xla_flags(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    config = str(REPO / "configs" / "fashion_mnist.py")
    commands = {
        "main": ["resnet_flax.main", "--config", config, "--workdir", str(run),
                 "--mode", "eval"],
        "experiments.run": ["experiments.run", "degradation", "--arms", "resnet20",
                            "--seeds", "1", "--workdir", str(tmp_path / "exp"),
                            "--data_dir", str(tmp_path / "no_data"),
                            "--set", "allow_download=False"],
        "predict": ["resnet_flax.predict", "--workdir", str(run), str(tmp_path / "a.png")],
        "benchmark": ["resnet_flax.benchmark", "--model", "resnet20", "--data", "on-device",
                      "--dataset-size", "1"],
    }
    flags = {name: started_with(args) for name, args in commands.items()}
    assert len(set(flags.values())) == 1, flags
    assert "--xla_force_host_platform_device_count=" in flags["main"]


def test_the_set_up_leaves_a_started_jax_alone(monkeypatch):
    """In-process callers (notebooks, tests) keep the backends and flags they have."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert setup.jax_started()  # conftest started JAX's backends.
    setup.start(cache=False)
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"


def test_a_cpu_convolution_library_it_does_not_know_is_refused():
    with pytest.raises(ValueError, match="cpu_convs='mkl'"):
        setup.xla_cpu_flags(1, "mkl")
