"""A multi-process run whose peer dies: the survivor stops at once with one line and the
"try again" status, saving nothing partial, and the same command resumes the run.

Whenever the peer dies (before the first step, in a step, as a save begins, at a
barrier, during an asynchronous checkpoint's commit, in evaluation) and whichever it
is (the coordinator or the other), with the default ``--peer_timeout``."""

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, tiny_overrides
from runs import _MAIN, _MOMENTS, CONFIG, free_port

pytestmark = pytest.mark.slow

def start_processes(workdir, data_dir, doomed: int | None, moment: str = "save",
                    epochs: int = 6, address: str | None = None,
                    peer_timeout: int | None = None):
    """Two processes of one run; ``doomed`` SIGKILLs itself at ``moment``."""
    address = address or f"127.0.0.1:{free_port()}"
    args = ["--config", CONFIG, "--workdir", str(workdir),
            *tiny_overrides(data_dir, num_epochs=epochs), "--num_processes=2",
            f"--coordinator_address={address}",
            *([f"--peer_timeout={peer_timeout}"] if peer_timeout else [])]
    return [subprocess.Popen(
        [sys.executable, "-c", _MOMENTS + _MAIN, *args, f"--process_id={i}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "DIE_AT": moment if i == doomed else "",
             "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}) for i in range(2)]


def survive(procs, doomed: int):
    """(seconds from the doomed process's end to the survivor's, its status, stderr)."""
    survivor = procs[1 - doomed]
    _, doomed_err = procs[doomed].communicate(timeout=600)
    died = time.monotonic()
    _, err = survivor.communicate(timeout=600)
    assert procs[doomed].returncode == -9, doomed_err[-2000:]  # It died as planned.
    return time.monotonic() - died, survivor.returncode, err


def complete_steps(workdir) -> list[str]:
    return sorted((p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()),
                  key=int)


def resume(workdir, data_dir, epochs: int, address: str | None = None) -> str:
    """The same command again, on both processes, to the end; process 0's stderr."""
    again = start_processes(workdir, data_dir, None, epochs=epochs, address=address)
    outputs = [p.communicate(timeout=600) for p in again]
    assert [p.returncode for p in again] == [0, 0], outputs[0][1][-2000:]
    return outputs[0][1]


@pytest.mark.parametrize("doomed", [0, 1])  # The coordinator, or the other process.
def test_a_dead_peer_ends_the_run_at_once_in_one_line_and_it_resumes(
        tiny_data_dir, tmp_path, doomed):
    workdir = tmp_path / "run"
    procs = start_processes(workdir, tiny_data_dir, doomed, epochs=2, peer_timeout=10)
    seconds, status, err = survive(procs, doomed)
    assert seconds < 5  # Not JAX's heartbeat wait.
    assert status == 75
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "lost a peer process" in lines[0], err[-2000:]
    assert "last checkpoint: step 4 in" in lines[0] and "Traceback" not in err
    assert "Check failure" not in err and "Fatal Python error" not in err
    assert complete_steps(workdir) == ["4"]  # Nothing partial counts as a step.
    if doomed == 1:  # The same command resumes from that checkpoint to the end.
        resumed = resume(workdir, tiny_data_dir, 2)
        assert "resuming" in resumed and "from step 4" in resumed


@pytest.mark.parametrize("doomed", [0, 1])
@pytest.mark.parametrize("moment", ["start", "step", "barrier", "commit", "evaluation"])
def test_whenever_a_peer_dies_the_survivor_gives_one_line_within_5_s(
        tiny_data_dir, tmp_path, moment, doomed):
    """The survivor's whole stderr is its device line, any epoch lines and the lost-peer
    line, within 5 s of the death, at the default --peer_timeout (20 s)."""
    workdir, address = tmp_path / "run", f"127.0.0.1:{free_port()}"
    procs = start_processes(workdir, tiny_data_dir, doomed, moment, 2, address)
    seconds, status, err = survive(procs, doomed)
    print(f"{moment}, process {doomed} killed: the survivor exited {seconds:.2f} s later")
    assert status == 75, err[-3000:]
    said = [line for line in err.splitlines() if not line.startswith(("process ", "epoch "))]
    assert len(said) == 1 and said[0].startswith("error:"), err[-3000:]
    assert "lost a peer process" in said[0] and seconds < 5
    steps = complete_steps(workdir) if (workdir / "checkpoints").is_dir() else []
    last = f"step {steps[-1]} in" if steps else "none yet in"
    assert f"last checkpoint: {last} {workdir / 'checkpoints'};" in said[0]
    if moment == "commit":  # Step 8's unfinished folder is not a step.
        assert steps == ["4"]
    if (moment, doomed) == ("commit", 0):  # Resumed from 4 (the other resumes above).
        # Process 0's address again at once: a new run binds it, while the dead
        # coordinator's helper still holds the old connections.
        resumed = resume(workdir, tiny_data_dir, 2, address)
        assert "from step 4" in resumed and complete_steps(workdir)[-1] == "16"
