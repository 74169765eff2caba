"""SIGTERM or Ctrl-C during ``--mode eval``, ``predict`` or ``export``: one line, the
status a stopped training run has (128 + the signal), and nothing half-written, wherever
the signal lands (in Orbax's event loop as it reads the checkpoint, in a garbage
collection callback)."""

import shutil
import signal
import subprocess
import sys

import pytest
from conftest import REPO

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

# Runs a command with SIGTERM sent while WHERE runs: `orbax`, the event loop that reads
# the checkpoint's arrays (as it waits: the signal lands in the loop's select), or `gc`,
# a garbage-collection callback (where Python cannot raise: it prints and goes on).
_SIGNAL_IN = """
import asyncio, gc, importlib, os, signal, sys, threading
from orbax.checkpoint._src import asyncio_utils
from resnet_flax.run import evaluate
where, command = sys.argv[1:3]
run_loop, restore = asyncio_utils._run_sync_via_new_loop, evaluate.restore
def reading_arrays(coro):
    inner = coro.cr_frame.f_locals.get("coro")
    if "deserialize" not in getattr(inner, "__qualname__", ""):
        return run_loop(coro)
    async def waits():
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
        await asyncio.sleep(1)
        return await coro
    return run_loop(waits())
def in_gc(*args):
    gc.callbacks.remove(in_gc)
    os.kill(os.getpid(), signal.SIGTERM)
def restore_after_gc(*args, **kwargs):
    gc.callbacks.append(in_gc)
    gc.collect()
    return restore(*args, **kwargs)
if where == "orbax":
    asyncio_utils._run_sync_via_new_loop = reading_arrays
else:
    evaluate.restore = restore_after_gc
sys.argv = [command, *sys.argv[3:]]
if command == "main":
    from absl import app
    from resnet_flax import cli
    from resnet_flax.cli import main
    app.run(main.main, flags_parser=cli.parse_flags)
else:
    sys.exit(importlib.import_module(f"resnet_flax.cli.{command}").main())
"""


@pytest.fixture(scope="module")
def trained(one_epoch_run, tmp_path_factory):
    """A copy of the session's one-epoch run: the signalled commands may write to it."""
    workdir = tmp_path_factory.mktemp("run") / "run"
    shutil.copytree(one_epoch_run, workdir)
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


@pytest.mark.parametrize("where", ["orbax", "gc"])
@pytest.mark.parametrize("command", ["evaluation", "predict", "export"])
def test_a_signal_inside_orbax_or_a_gc_callback_still_stops_in_exactly_one_line(
        trained, tmp_path, command, where):
    args = {"evaluation": ["main", "--workdir", trained, "--mode", "eval"],
            "predict": ["predict", "--workdir", trained, tmp_path],
            "export": ["export", "--workdir", trained, "--output", tmp_path / "out"]}[command]
    result = subprocess.run([sys.executable, "-c", _SIGNAL_IN, where, *map(str, args)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    # Not Orbax's pending tasks and never-awaited coroutines, nor "Exception ignored".
    assert result.stderr.splitlines() == [
        f"{command} stopped by SIGTERM before it finished; run it again to finish"]
    assert result.returncode == 128 + signal.SIGTERM and result.stdout == ""
    assert not (trained / "eval").exists() and list(tmp_path.iterdir()) == []
