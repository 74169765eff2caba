"""benchmarks/gpu_experiments.sh, proven on the CPU at toy size: a GPU machine's call
brings back the reports and each finished run's small files, and the next machine,
given them, skips those runs and trains the rest."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO


def _call(carry, out, workdir, arms):
    env = {**{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",)},
           "JAX_PLATFORMS": "cpu", "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", "benchmarks/gpu_experiments.sh", "--smoke", "--carry", str(carry), "--out",
         str(out), "--workdir", str(workdir), "--experiments", "shortcuts",
         "--arms", arms, "--jobs", "2", "--seeds", "1", "--budget", "400", "--site",
         str(out.parent / "site")],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_a_second_machine_trains_only_what_the_first_did_not_finish(tiny_data_dir, tmp_path):
    carry = tmp_path / "carry"
    (carry / "wheels").mkdir(parents=True)
    (carry / "tfds").symlink_to(tiny_data_dir)
    first = _call(carry, tmp_path / "out1", tmp_path / "machine1", "resnet20_A")
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads((tmp_path / "out1" / "gpu_experiments.json").read_text())
    assert (summary["finished"], summary["exit_status"]) == (1, 0)
    back = tmp_path / "out1" / "exp" / "shortcuts"
    assert "Scale: `gpu`. Its 1 run finished." in (back / "results.md").read_text()
    assert (back / "resnet20_A" / "seed_0" / "metrics.jsonl").exists()
    assert not list(back.rglob("checkpoints"))  # They stay on the machine.

    shutil.copytree(tmp_path / "out1" / "exp", tmp_path / "machine2")
    second = _call(carry, tmp_path / "out2", tmp_path / "machine2", "resnet20_A,resnet20_B")
    assert second.returncode == 0, second.stdout + second.stderr
    logs = tmp_path / "machine2" / "shortcuts" / "logs"
    assert "done, skipped" in (logs / "resnet20_A_seed_0.log").read_text()
    assert "training in" in (logs / "resnet20_B_seed_0.log").read_text()
    report = (tmp_path / "out2" / "exp" / "shortcuts" / "results.md").read_text()
    assert "All 2 runs finished." in report and "## What shows" in report


@pytest.mark.slow
def test_the_packing_benchmark_times_the_grid_for_each_jobs(tiny_data_dir, tmp_path):
    # One step a dispatch: the gpu scale's compiled loop of steps runs unoptimized here
    # (~100x slower a step); what packing costs does not depend on it (test_dispatch).
    sets = [x for item in ("batch_size=16", "eval_batch_size=8", "steps_per_dispatch=1",
                           "model_options.width_multiplier=0.25") for x in ("--set", item)]
    proc = subprocess.run(
        [sys.executable, "benchmarks/experiment_packing.py", "--jobs", "1,2", "--epochs", "1",
         "--seeds", "1", "--arms", "resnet20_A,resnet20_B", "--data-dir", str(tiny_data_dir),
         "--out", str(tmp_path), *sets],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads((tmp_path / "packing.json").read_text())["rows"]
    assert [(r["jobs"], r["finished"], r["exit_status"]) for r in rows] == [(1, 2, 0),
                                                                            (2, 2, 0)]
    assert all(r["seconds"] > 0 for r in rows)
    assert "| 2 |" in (tmp_path / "packing.md").read_text()
