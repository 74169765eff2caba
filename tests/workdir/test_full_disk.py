"""A disk that fills up during a save: one line, not Orbax's tracebacks."""

import json
import shutil
import subprocess

import pytest
from conftest import tiny_overrides
from runs import run_main


def mount_tmpfs(mount, size: str):
    """A real tmpfs of ``size`` at the new folder ``mount``; the test skips where it cannot."""
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip() or 'not root'}")
    return mount


@pytest.fixture
def small_disk(tmp_path):
    """A real 400 KiB tmpfs: the tiny model's first checkpoint does not fit."""
    mount = mount_tmpfs(tmp_path / "disk", "400k")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_save_the_full_disk_refuses_is_one_line(tiny_data_dir, small_disk):
    workdir = small_disk / "run"
    proc = run_main(workdir, *tiny_overrides(tiny_data_dir, num_epochs=1))
    assert proc.returncode == 2
    assert proc.stderr == (f"error: cannot write a checkpoint in {workdir / 'checkpoints'}: "
                           "No space left on device; none was written before it: free space "
                           "or give another --workdir, then run the same command to resume\n")


@pytest.mark.slow
def test_a_rerun_on_the_still_full_disk_is_one_line_and_touches_nothing(tiny_data_dir,
                                                                         small_disk):
    workdir = small_disk / "run"
    first = run_main(workdir, *tiny_overrides(tiny_data_dir, num_epochs=1))
    assert first.returncode == 2
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    again = run_main(workdir, *tiny_overrides(tiny_data_dir, num_epochs=1))
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr[-3000:]
    assert again.stderr.startswith("error: ") and "No space left on device" in again.stderr
    after = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    # The refused save's unfinished folder is Orbax's to clear; every other file stays.
    kept = {p: d for p, d in before.items() if ".orbax-checkpoint-tmp" not in str(p)}
    assert {p: after.get(p) for p in kept} == kept


@pytest.fixture
def read_only_run(one_epoch_run, tmp_path):
    """A finished one-epoch run copied to a real tmpfs, then remounted read-only (root
    ignores file modes; a read-only mount refuses it too)."""
    mount = mount_tmpfs(tmp_path / "ro", "20m")
    workdir = mount / "run"
    shutil.copytree(one_epoch_run, workdir)
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    yield workdir
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_read_only_workdir_refuses_training_and_still_evaluates(tiny_data_dir,
                                                                   read_only_run):
    workdir = read_only_run
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    resumed = run_main(workdir, *tiny_overrides(tiny_data_dir, num_epochs=2))
    assert resumed.returncode == 2 and resumed.stderr.count("\n") == 1, resumed.stderr
    assert resumed.stderr.startswith(f"error: cannot write the workdir {workdir}: Read-only "
                                     "file system")
    evaluated = run_main(workdir, "--mode=eval", config=None)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "eval step 8 (23 test images): loss=" in evaluated.stdout
    assert evaluated.stderr.startswith("warning: nothing written (") and \
        "Read-only file system" in evaluated.stderr and evaluated.stderr.count("\n") == 1
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before
    elsewhere = workdir.parent.parent / "eval_out"
    written = run_main(workdir, "--mode=eval", f"--output={elsewhere}", config=None)
    assert written.returncode == 0 and written.stderr == "", written.stderr[-3000:]
    assert f"wrote {elsewhere / 'step_8.json'}" in written.stdout
    assert json.loads((elsewhere / "step_8.json").read_text())["examples"] == 23


@pytest.mark.slow
def test_a_run_file_the_storage_refuses_after_the_checks_is_one_line(tiny_data_dir, tmp_path):
    """The TensorBoard folder alone read-only (a bind mount): the run passes the workdir
    checks and writes its config, then the event file is refused."""
    workdir = tmp_path / "run"
    events = workdir / "tensorboard"
    events.mkdir(parents=True)
    made = subprocess.run(["mount", "--bind", str(events), str(events)], capture_output=True)
    if made.returncode:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(events)], check=True)
        proc = run_main(workdir, *tiny_overrides(tiny_data_dir, num_epochs=1))
    finally:
        subprocess.run(["umount", str(events)], check=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    assert proc.stderr.startswith("error: cannot write ") and proc.stderr.endswith(
        "Read-only file system; give another --workdir, then run the same command to "
        "resume\n")
