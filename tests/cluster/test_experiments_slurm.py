"""``python -m experiments.run --launch slurm`` on the local SLURM: a job array of the
grid's runs and a report job after it, ending as the local launcher's runs end."""

import csv
import re
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO
from runs import final_params
from slurm_jobs import slurm_cluster  # noqa: F401  (the `slurm` fixture)

TINY = ["--set", "num_epochs=1", "--set", "batch_size=16", "--set", "eval_batch_size=8",
        "--set", "model_options.width_multiplier=0.25", "--set", "checkpoint_every_steps=100",
        "--set", "train_subset=32"]


def results(workdir) -> list[dict]:
    with open(workdir / "results.csv") as f:
        return [{k: v for k, v in row.items() if "wall_seconds" not in k}
                for row in csv.DictReader(f)]


@pytest.mark.slow
def test_a_job_array_trains_the_grid_as_the_local_launcher_does(slurm, tiny_data_dir,
                                                                 tmp_path):
    grid = ["shortcuts", "--arms", "resnet20_A", "--seeds", "2", "--data_dir",
            str(tiny_data_dir), *TINY]
    experiment = [sys.executable, "-m", "experiments.run", *grid, "--workdir"]
    local = subprocess.run([*experiment, str(tmp_path / "local")], capture_output=True,
                           text=True, env=slurm.env, cwd=REPO, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]

    submitted = slurm.run(*experiment, tmp_path / "array", "--launch", "slurm").stderr
    found = re.search(r"submitted job array (\d+) \(2 runs, .*\) and job (\d+)", submitted)
    assert found, submitted
    array, report = found.groups()
    assert slurm.wait_done(report, timeout=600) == "COMPLETED", (
        (tmp_path / "array" / "slurm" / "report.log").read_text())
    for task in ("0", "1"):
        assert slurm.state(f"{array}_{task}") == "COMPLETED"

    assert results(tmp_path / "array") == results(tmp_path / "local")
    for seed in (0, 1):
        run = f"resnet20_A/seed_{seed}"
        (step_a, a), (step_b, b) = (final_params(tmp_path / launch / run)
                                    for launch in ("local", "array"))
        assert step_a == step_b
        flat_a, flat_b = ocp.tree.to_flat_dict(a), ocp.tree.to_flat_dict(b)
        for key in flat_a:
            np.testing.assert_array_equal(flat_a[key], flat_b[key], err_msg=f"{run} {key}")


def test_the_jobs_it_submits(tmp_path, monkeypatch, capsys):
    """Without a cluster: the array has a task per run, each the local command with
    --task; the report job waits for all of them; --sbatch reaches both."""
    from experiments import run, slurm

    submitted = []
    monkeypatch.setattr(slurm.shutil, "which", lambda name: "/usr/bin/sbatch")
    monkeypatch.setattr(slurm, "_sbatch", lambda options: submitted.append(options)
                        or str(40 + len(submitted)))
    assert run.main(["shortcuts", "--seeds", "2", "--workdir", str(tmp_path), "--launch",
                     "slurm", "--sbatch=--partition=gpu --gpus=1"]) == 0
    array, report = submitted
    assert "--array=0-5" in array and array[-3:-1] == ["--partition=gpu", "--gpus=1"]
    assert "--dependency=afterok:41" in report and report[-3:-1] == array[-3:-1]
    script = (tmp_path / "slurm" / "array.sh").read_text()
    assert script.endswith(' --task "$SLURM_ARRAY_TASK_ID"\n') and "--launch" not in script
    assert (tmp_path / "slurm" / "report.sh").read_text() == script.replace(
        ' --task "$SLURM_ARRAY_TASK_ID"', "")
    assert (tmp_path / "slurm" / "tasks.txt").read_text().splitlines()[5] == (
        f"5 resnet20_C seed 1 {tmp_path / 'resnet20_C' / 'seed_1'}")
    assert "submitted job array 41 (6 runs" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--launch", "slurm"], "error: --launch slurm needs SLURM's sbatch on PATH"),
    (["--sbatch=--gpus=1"], "error: --sbatch goes with --launch slurm (see python -m "
                            "experiments.run --help)"),
    (["--task", "3"], "error: --task 3: the grid has runs 0 to 2"),
])
def test_launch_mistakes_are_one_line(argv, message, tmp_path, monkeypatch, capsys):
    from experiments import run, slurm

    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit):
        run.main(["shortcuts", "--seeds", "1", "--workdir", str(tmp_path), *argv])
    assert capsys.readouterr().err.strip() == message


@pytest.mark.slow
def test_an_array_task_requeued_mid_run_resumes_to_the_local_runs_parameters(
        slurm, tiny_data_dir, tmp_path):
    """``scontrol requeue`` of one running task: it saves the step it is in on SIGTERM,
    runs again from that checkpoint (the only one: saves every 1000 steps), and ends
    with the parameters the local launcher's run ends with; the report job follows."""
    grid = ["shortcuts", "--arms", "resnet20_A", "--seeds", "1", "--data_dir",
            str(tiny_data_dir), *TINY, "--set", "num_epochs=12",
            "--set", "checkpoint_every_steps=1000"]
    experiment = [sys.executable, "-m", "experiments.run", *grid, "--workdir"]
    local = subprocess.run([*experiment, str(tmp_path / "local")], capture_output=True,
                           text=True, env=slurm.env, cwd=REPO, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]

    submitted = slurm.run(*experiment, tmp_path / "array", "--launch", "slurm").stderr
    array, report = re.search(r"submitted job array (\d+) .* and job (\d+)", submitted).groups()
    task = f"{array}_0"
    slurm.requeue_mid_run(task, tmp_path / "array" / "resnet20_A" / "seed_0" / "metrics.jsonl")
    log = tmp_path / "array" / "slurm" / "report.log"
    assert slurm.wait_done(report, timeout=600) == "COMPLETED", (
        log.read_text() if log.exists() else "no report log")

    task_log = (tmp_path / "array" / "slurm" / "task_0.log").read_text()
    assert re.search(r"stopped by SIGTERM after step \d+: checkpoint \d+ saved", task_log), \
        task_log
    (step_a, a), (step_b, b) = (final_params(tmp_path / launch / "resnet20_A" / "seed_0")
                                for launch in ("local", "array"))
    assert step_a == step_b
    flat_a, flat_b = ocp.tree.to_flat_dict(a), ocp.tree.to_flat_dict(b)
    for key in flat_a:
        np.testing.assert_array_equal(flat_a[key], flat_b[key], err_msg=str(key))
