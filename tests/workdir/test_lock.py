"""One run per workdir: a second is refused in one line; a killed run leaves no lock."""

import json
import os
import signal
import socket
import subprocess
import sys

import conftest
import pytest
from conftest import tiny_overrides
from runs import run_main

from resnet_flax.workdir import lock


def test_a_second_run_in_a_busy_workdir_is_refused_in_one_line(tiny_data_dir, tmp_path):
    with lock.held(tmp_path):
        proc = run_main(tmp_path, *tiny_overrides(tiny_data_dir, num_epochs=1))
    assert proc.returncode == 2
    assert proc.stderr == (f"error: {tmp_path} is in use by another run (pid {os.getpid()} "
                           f"on {socket.gethostname()}): wait for it to end, or give "
                           "another --workdir\n")
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "config.json").exists()


def test_a_killed_holder_leaves_the_workdir_free(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import pathlib, sys, time; from resnet_flax.workdir import "
         "lock\nwith lock.held(pathlib.Path(sys.argv[1])):\n print('held', flush=True); "
         "time.sleep(60)", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(lock.WorkdirInUse, match=f"pid {holder.pid} "), lock.held(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with lock.held(tmp_path):  # The OS released it with the process.
        assert (tmp_path / lock.OWNER).read_text().startswith(f"pid {os.getpid()} ")


def test_a_run_that_wrote_nothing_leaves_no_lock_files(tmp_path):
    with lock.held(tmp_path / "run"):
        pass
    assert list((tmp_path / "run").iterdir()) == []


def test_a_workdir_that_cannot_be_written_is_one_line_before_any_work(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(lock.WorkdirError) as err, lock.held(tmp_path / "a_file" / "run"):
        pass
    assert str(err.value) == (f"cannot write the workdir {tmp_path / 'a_file' / 'run'}: Not "
                              "a directory; give a folder this process can write")


def test_checkpoints_that_are_a_file_stop_the_run_at_its_start(tiny_data_dir, tmp_path):
    (tmp_path / "checkpoints").write_text("not a folder")
    proc = run_main(tmp_path, *tiny_overrides(tiny_data_dir, num_epochs=1))
    assert proc.returncode == 2
    assert proc.stderr == (f"error: {tmp_path / 'checkpoints'} is a file, where this run's "
                           "checkpoints go: move it, or give another --workdir\n")


def test_a_finished_holder_leaves_the_workdir_as_it_found_it(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    with lock.held(tmp_path):
        assert (tmp_path / lock.OWNER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


@pytest.mark.slow
def test_two_runs_started_together_in_one_workdir_train_once(tiny_data_dir, tmp_path):
    """Both started at the same moment: one trains to the end, the other is refused in one
    line before writing anything; the workdir holds one run's records, whole."""
    args = ["--config", "configs/fashion_mnist.py", "--workdir", str(tmp_path),
            *tiny_overrides(tiny_data_dir, num_epochs=2)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, "-m", "resnet_flax.main", *args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=conftest.REPO) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=600), p.stderr.read()) for p in procs)
    (ok, _), (refused, message) = outcomes
    assert (ok, refused) == (0, 2), outcomes
    assert message.startswith(f"error: {tmp_path} is in use by another run (pid ")
    assert message.count("\n") == 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) \
        == ["12", "16", "8"]
