"""``python -m resnet_flax.main`` as a user runs it: its help, and what a run that cannot
start leaves behind (``--config`` errors: tests/cli/test_cli_errors.py and
tests/e2e/test_bad_inputs.py; evaluation without ``--config``: tests/run/test_evaluate.py)."""

import os
import subprocess
import sys

from conftest import REPO

CONFIG = "configs/fashion_mnist.py"


def _main(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "resnet_flax.main", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_help_shows_the_cpu_quick_start_and_the_flags():
    proc = _main("--help")  # absl's --help exits with status 1.
    assert ("    python -m resnet_flax.main --config configs/fashion_mnist_cpu.py --workdir "
            "runs/fm_cpu\n") in proc.stdout
    assert "python -m resnet_flax.main --workdir runs/fm_cpu --mode eval" in proc.stdout
    for flag in ("--config", "--workdir", "--mode", "--checkpoint", "--host_devices"):
        assert f"  {flag}:" in proc.stdout, flag
    assert "  " * 4 + "--config" not in proc.stdout  # No continuation-line gap.


def test_a_run_without_its_dataset_leaves_no_empty_workdir(tmp_path):
    """The folders main created are removed while empty; one that was there stays."""
    no_data = [f"--config.data_dir={tmp_path / 'no_data'}", "--config.allow_download=False"]
    kept = tmp_path / "kept"
    kept.mkdir()
    for workdir in (tmp_path / "new" / "run", kept):
        proc = _main("--config", CONFIG, "--workdir", str(workdir), *no_data)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
        assert "python -m resnet_flax.data.build fashion_mnist" in lines[0]
    assert not (tmp_path / "new").exists()
    assert kept.is_dir() and not any(kept.iterdir())
    assert not (tmp_path / "no_data").exists() or not any((tmp_path / "no_data").iterdir())
