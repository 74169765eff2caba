"""A run on another device count: the same training within rounding (the bound is
measured against rounding's own reach), a resume on another count recorded, and a
warning where the math depends on the count by design (per-device BatchNorm)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, tiny_overrides
from runs import CONFIG


def _main(workdir, devices, data_dir, **extra):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run(
        [sys.executable, "-m", "resnet_flax.main", "--config", CONFIG, "--workdir",
         str(workdir), "--host_devices", str(devices), *tiny_overrides(data_dir, **extra)],
        capture_output=True, text=True, env=env, timeout=600, cwd=REPO)


@pytest.mark.slow
def test_a_resume_on_another_device_count_is_recorded_and_warned_of_where_it_matters(
        tiny_data_dir, tmp_path):
    """Per-device statistics: warned. Synchronised ones train alike on any count, so no
    warning (test_resume_guard's test_synchronised_statistics_resume_without_a_warning)."""
    first = _main(tmp_path, 2, tiny_data_dir, num_epochs=1, sync_batch_stats=False)
    assert first.returncode == 0, first.stderr
    assert json.loads((tmp_path / "devices.json").read_text()) == {"devices": 2}
    resumed = _main(tmp_path, 1, tiny_data_dir, num_epochs=2, sync_batch_stats=False)
    assert resumed.returncode == 0, resumed.stderr
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {tmp_path} trained on 2 devices with per-device BatchNorm statistics "
        "(config.sync_batch_stats=False) and resumes on 1: each device's statistics "
        "now span 8 examples, not 4, so the run goes on as a different one"]
    change = json.loads((tmp_path / "config_changes.jsonl").read_text().splitlines()[-1])
    assert change["step"] == 8 and change["changes"]["devices"] == {"from": 2, "to": 1}
    assert json.loads((tmp_path / "devices.json").read_text()) == {"devices": 1}


@pytest.mark.slow
def test_one_two_and_four_devices_train_alike_within_rounding():
    """32 steps of SGD (lr 1e-4, crops, flips, dropout) on 1, 2 and 4 devices: the
    parameters within 1e-5 relative and the BatchNorm statistics within 1e-4, no further
    apart than the 1-device run from weights moved by one unit in the last place
    (BENCHMARKS.md#one-run-on-any-device-count has every recipe's figures)."""
    proc = subprocess.run([sys.executable, "benchmarks/device_count.py", "--recipes",
                           "sgd_lr_1e-4", "--steps", "32", "--json"],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["run"]: r["gaps"] for r in map(json.loads, proc.stdout.splitlines())}
    nudged = rows["1 device, weights nudged 1 ulp"]
    for run in ("2 devices", "4 devices"):
        params, statistics, _ = rows[run]
        assert params < 1e-5 and statistics < 1e-4, (run, rows[run])
        assert params < 10 * nudged[0] and statistics < 10 * nudged[1], (run, rows)
