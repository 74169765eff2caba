"""benchmarks/step_sweep.sh: every variant's command is the benchmark's own, and the
sweep runs on the CPU at toy size, writing its table as it goes."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from resnet_flax.cli import benchmark


def _sweep():
    sys.path.insert(0, str(REPO / "benchmarks"))  # It imports gpu_suite by name.
    try:
        spec = importlib.util.spec_from_file_location("step_sweep",
                                                      REPO / "benchmarks" / "step_sweep.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["step_sweep"] = module  # Its dataclasses look themselves up there.
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


def test_every_variant_is_a_valid_benchmark_command():
    sweep = _sweep()
    assert [v.name for v in sweep.VARIANTS][0] == "base"
    assert sweep.VARIANTS[-1].name == "base_again"
    for variant in sweep.VARIANTS:
        for smoke in (False, True):
            args = benchmark.parse_args(sweep.command(variant, smoke)[3:])
            assert args.model == "resnet50" and args.dtype == "bfloat16"
            assert args.batch == (max(4, variant.batch // 64) if smoke else variant.batch)


@pytest.mark.slow
def test_the_sweep_runs_at_toy_size_and_tables_each_variant(tmp_path):
    carry = tmp_path / "carry"
    (carry / "wheels").mkdir(parents=True)
    env = {**{k: v for k, v in os.environ.items() if k != "XLA_FLAGS"},
           "JAX_PLATFORMS": "cpu", "PYTHON": sys.executable}
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", "benchmarks/step_sweep.sh", "--smoke", "--carry", str(carry), "--out",
         str(out), "--site", str(tmp_path / "site"), "--variants", "base,lhs"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "step_sweep.json").read_text())
    assert [v["name"] for v in report["variants"]] == ["base", "lhs"]
    assert all(v["status"] == "ok" and v["images_per_sec"] > 0 for v in report["variants"])
    table = (out / "step_sweep.md").read_text()
    assert "| base | imagenet stem, batch 256 |" in table and "1.000x" in table
    assert "--xla_gpu_enable_latency_hiding_scheduler=true" in table
