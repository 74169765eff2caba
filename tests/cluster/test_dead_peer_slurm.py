"""Under a real SLURM: the coordinator's ``srun`` task SIGKILLed during an asynchronous
checkpoint's commit ends the other task within seconds, in one line and with the "try
again" status 75, and the same ``srun`` resumes from the last complete checkpoint.

What srun adds is the launch and the tasks' exit statuses; the other moments and the
other task's death are the loopback cases of tests/e2e/test_dead_peer.py (a save
beginning: test_a_dead_peer_ends_the_run_at_once_in_one_line_and_it_resumes[1]; the
other task in a commit: test_whenever_a_peer_dies_the_survivor_gives_one_line_within_5_s
[commit-1]), the same code after the same start."""

import sys

import pytest
from conftest import tiny_overrides
from runs import _MAIN, _MOMENTS, CONFIG
from slurm_jobs import slurm_cluster  # noqa: F401  (the `slurm` fixture)

pytestmark = pytest.mark.slow

# Each task's exit status to a file of its own: srun reports only the worst one.
TASK = 'python -c "$RF_MAIN" "$@"; echo $? > "$RF_STATUS/status_$SLURM_PROCID"'


def _srun(slurm, workdir, data_dir, out, **env):
    args = ["--config", CONFIG, "--workdir", str(workdir),
            *tiny_overrides(data_dir, num_epochs=6)]
    return slurm.run("srun", "-n", "2", "--kill-on-bad-exit=0", "-e", f"{out}/task_%t.err",
                     "bash", "-c", TASK, "_", *args, check=False, timeout=600,
                     env={"XLA_FLAGS": "--xla_force_host_platform_device_count=1",
                          "JAX_PLATFORMS": "cpu", "RF_MAIN": _MOMENTS + _MAIN,
                          "RF_STATUS": str(out),
                          "PATH": f"{sys.exec_prefix}/bin:/usr/bin:/bin", **env})


@pytest.mark.parametrize(("moment", "killed"), [("commit", 0)])
def test_a_task_killed_under_srun_ends_the_other_at_once_and_srun_resumes(
        slurm, tiny_data_dir, tmp_path, moment, killed):
    workdir, first, again = tmp_path / "run", tmp_path / "first", tmp_path / "again"
    first.mkdir()
    again.mkdir()
    _srun(slurm, workdir, tiny_data_dir, first, DIE_AT=moment, KILL_PROCID=str(killed))
    statuses = {i: (first / f"status_{i}") for i in (0, 1)}
    survivor = 1 - killed
    assert statuses[killed].read_text().strip() == "137"  # SIGKILLed at step 8.
    assert statuses[survivor].read_text().strip() == "75"
    assert statuses[survivor].stat().st_mtime - statuses[killed].stat().st_mtime < 5
    err = (first / f"task_{survivor}.err").read_text()
    said = [line for line in err.splitlines()
            if not line.startswith(("process ", "epoch ", "multi-process run set up by"))]
    assert len(said) == 1 and "lost a peer process" in said[0], err[-2000:]
    assert "last checkpoint: step 4 in" in said[0]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()
                  if p.name.isdigit()) == ["4"]

    _srun(slurm, workdir, tiny_data_dir, again)
    assert [(again / f"status_{i}").read_text().strip() for i in (0, 1)] == ["0", "0"]
    resumed = (again / "task_0.err").read_text()
    assert "resuming" in resumed and "from step 4" in resumed, resumed[-2000:]
