"""A multi-process run whose peer dies: the survivor stops at once with one line and the
"try again" status, saving nothing partial, and the same command resumes the run."""

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, tiny_overrides
from runs import _MAIN, CONFIG, free_port

pytestmark = pytest.mark.slow


def start_processes(workdir, data_dir, doomed: int | None):
    """Two processes of one run; ``doomed`` SIGKILLs itself as it saves step 8."""
    address = f"127.0.0.1:{free_port()}"
    args = ["--config", CONFIG, "--workdir", str(workdir),
            *tiny_overrides(data_dir, num_epochs=6), "--num_processes=2",
            f"--coordinator_address={address}", "--peer_timeout=10"]
    return [subprocess.Popen(
        [sys.executable, "-c", _MAIN, *args, f"--process_id={i}"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "KILL_AT_STEP": "8" if i == doomed else "-1",
             "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}) for i in range(2)]


@pytest.mark.parametrize("doomed", [0, 1])  # The coordinator, or the other process.
def test_a_dead_peer_ends_the_run_at_once_in_one_line_and_it_resumes(
        tiny_data_dir, tmp_path, doomed):
    workdir = tmp_path / "run"
    procs = start_processes(workdir, tiny_data_dir, doomed)
    survivor = procs[1 - doomed]
    procs[doomed].communicate(timeout=600)
    died = time.monotonic()
    _, err = survivor.communicate(timeout=600)
    assert time.monotonic() - died < 15  # Not JAX's 100 s heartbeat wait.
    assert survivor.returncode == 75
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "lost a peer process" in lines[0], err[-2000:]
    assert "last checkpoint: step 4 in" in lines[0] and "Traceback" not in err
    assert "Check failure" not in err and "Fatal Python error" not in err
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()
                  if p.name.isdigit()) == ["4"]  # Nothing partial counts as a step.
    if doomed == 1:  # The same command resumes from that checkpoint to the end.
        again = start_processes(workdir, tiny_data_dir, None)
        outputs = [p.communicate(timeout=600) for p in again]
        assert [p.returncode for p in again] == [0, 0], outputs[0][1][-2000:]
        assert "resuming" in outputs[0][1] and "from step 4" in outputs[0][1]
