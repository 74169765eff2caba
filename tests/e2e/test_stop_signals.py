"""SIGTERM or Ctrl-C during ``--mode eval``, ``predict`` or ``export``: one line, the
status a stopped training run has (128 + the signal), and nothing half-written."""

import signal
import subprocess
import sys

import pytest
from conftest import REPO, tiny_overrides
from runs import run_main

# Runs a command with FUNCTION (module:name) patched to signal this process first.
_SIGNAL_DURING = """
import importlib, os, signal, sys
module_name, name, sig, command = sys.argv[1:5]
module = importlib.import_module(module_name)
original = getattr(module, name)
def signalled(*args, **kwargs):
    os.kill(os.getpid(), getattr(signal, sig))
    return original(*args, **kwargs)
setattr(module, name, signalled)
sys.argv = [command, *sys.argv[5:]]
if command == "main":
    from absl import app
    from resnet_flax import cli
    from resnet_flax.cli import main
    app.run(main.main, flags_parser=cli.parse_flags)
else:
    sys.exit(importlib.import_module(f"resnet_flax.cli.{command}").main())
"""


@pytest.fixture(scope="module")
def trained(tiny_data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    assert run_main(workdir, *tiny_overrides(tiny_data_dir, num_epochs=1)).returncode == 0
    return workdir


def signalled(function: str, sig: str, command: str, *args):
    return subprocess.run([sys.executable, "-c", _SIGNAL_DURING, *function.split(":"), sig,
                           command, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_evaluation_stops_in_one_line(trained, sig):
    result = signalled("resnet_flax.run.evaluate:restore", sig, "main", "--workdir", trained,
                       "--mode", "eval")
    assert result.returncode == 128 + getattr(signal, sig)
    assert result.stderr.strip().splitlines() == [
        f"evaluation stopped by {sig} before it finished; run it again to finish"]
    assert not (trained / "eval").exists()


def test_predict_stops_in_one_line(trained, tmp_path):
    result = signalled("resnet_flax.cli.predict:read_all", "SIGTERM", "predict",
                       "--workdir", trained, tmp_path)
    assert result.returncode == 128 + signal.SIGTERM and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "predict stopped by SIGTERM before it finished; run it again to finish"]


def test_export_stops_in_one_line_and_leaves_nothing(trained, tmp_path):
    result = signalled("resnet_flax.export.writer:_check", "SIGTERM", "export",
                       "--workdir", trained, "--output", tmp_path / "out")
    assert result.returncode == 128 + signal.SIGTERM
    assert result.stderr.strip().splitlines() == [
        "export stopped by SIGTERM before it finished; run it again to finish"]
    assert list(tmp_path.iterdir()) == []  # Neither the folder nor its .partial.
