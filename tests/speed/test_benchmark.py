"""The benchmark CLI, the scanned epoch, the compilation cache and the torch reference.

No timings are asserted: only that the tools run and report what they promise.
"""

import importlib.util
import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resnet_flax import models
from resnet_flax.cli import benchmark, compile_cache

REPO = pathlib.Path(__file__).resolve().parents[2]
KEYS = {"model", "params", "batch", "steps", "dtype", "parallelism", "devices", "data", "loop",
        "images_per_sec", "images_per_sec_p10", "images_per_sec_p90", "step_ms", "compile_s",
        "flops_per_step", "gflops_per_sec", "peak_gflops_per_sec", "mfu", "memory", "versions",
        "device", "xla_flags", "date"}


def run_cli(capsys, *flags):
    result = benchmark.main(["--model", "resnet20", "--batch", "8", "--steps", "2",
                             "--warmup", "1", "--no-compile-cache", *flags])
    out, err = capsys.readouterr()
    (line,) = out.splitlines()  # stdout: the JSON line only; what it is doing goes to stderr.
    assert json.loads(line) == json.loads(json.dumps(result))
    progress = [ln for ln in err.splitlines() if ln.startswith("benchmark: ")]
    assert progress[0].startswith("benchmark: building resnet20 (32x32x3, 10 classes, batch 8")
    assert progress[1].startswith("benchmark: compiling the train step")
    assert "then timing 2 steps ..." in progress[2]
    assert KEYS <= set(result)
    assert result["images_per_sec"] > 0 and result["steps"] == 2
    assert result["flops_per_step"] > 0 and result["mfu"] > 0
    assert np.isfinite(result["final_loss"])
    return result


def test_cli_prints_one_json_line(capsys):
    result = run_cli(capsys)
    assert result["params"] == 269_722  # ResNet-20 (He et al. 2015: 0.27M)
    assert result["devices"] == len(jax.devices())
    # ~41 MMACs forward per 32x32 image, about 3x that for a train step.
    assert 150e6 < result["flops_per_step"] / 8 < 350e6


def test_cli_names_an_unknown_model_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        benchmark.main(["--model", "resnet21", "--no-compile-cache"])
    message = capsys.readouterr().err
    assert exit_.value.code == 2 and message.count("\n") == 1
    assert message.startswith("error: --model: unknown model 'resnet21'; did you mean ")
    assert "'resnet20'" in message and "--zoo` lists all" in message and len(message) < 200


@pytest.mark.slow
def test_cli_on_device_data_in_trainings_many_steps_loop(capsys, optimized):
    """The loop ``steps_per_dispatch`` trains with (its steps equal the one-by-one steps:
    tests/train/test_dispatch.py). Under pmap the loop is test_dispatch's, and the
    benchmark's pmap step test_cli_pmap's: nothing here differs by mode."""
    result = run_cli(capsys, "--data", "on-device", "--dataset-size", "40", "--loop",
                     "dispatch", "--steps-per-dispatch", "2", "--parallelism", "jit")
    assert result["loop"] == "dispatch" and result["data"] == "on-device"
    assert result["steps"] % 2 == 0 and math.isfinite(result["final_loss"])


@pytest.mark.slow
def test_cli_pmap(capsys):
    assert run_cli(capsys, "--parallelism", "pmap")["parallelism"] == "pmap"


@pytest.fixture
def restore_cache_config():
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes", "jax_compilation_cache_max_size")
    saved = {n: getattr(jax.config, n) for n in names}
    yield
    for n, v in saved.items():
        jax.config.update(n, v)


def test_compile_cache_enable_and_disable(tmp_path, monkeypatch, restore_cache_config):
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.enable() is None
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "env"))
    assert compile_cache.enable() == str(tmp_path / "env")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "env")
    assert jax.config.jax_compilation_cache_max_size == compile_cache.MAX_BYTES  # Locked.
    old = tmp_path / "old"  # Written without the limit: its entries get last-use times.
    old.mkdir()
    (old / "jit_step-abc-cache").write_bytes(b"x")
    jax.config.update("jax_compilation_cache_max_size", -1)
    assert compile_cache.enable(old) == str(old)
    stamp = int.from_bytes((old / "jit_step-abc-atime").read_bytes(), "little")
    assert stamp == (old / "jit_step-abc-cache").stat().st_mtime_ns
    assert compile_cache.enable(tmp_path / "arg") == str(tmp_path / "arg")
    assert (tmp_path / "arg").is_dir()
    monkeypatch.delenv(compile_cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.default_dir() == tmp_path / "xdg" / "resnet_flax" / "jax"


def _torch_reference():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location(
        "bench_torch_reference", REPO / "benchmarks" / "torch_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name,overrides", [("resnet20", {}), ("resnet56", {}),
                                            ("resnet18", {"stem": "cifar"})])
def test_torch_reference_has_our_parameter_count(name, overrides):
    ref = _torch_reference()
    model = models.create(name, num_classes=10, **overrides)
    variables = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))
    assert ours == ref.param_count(ref.create(name))


def test_torch_reference_step_runs():
    ref = _torch_reference()
    result = ref.run("resnet20", batch=4, steps=1, warmup=1)
    assert result["params"] == 269_722 and result["images_per_sec"] > 0


def test_torch_reference_autocast_bfloat16():
    ref = _torch_reference()
    result = ref.run("resnet20", batch=4, steps=1, warmup=0, dtype="bfloat16", image_size=16)
    assert result["dtype"] == "bfloat16" and result["input_shape"] == [16, 16, 3]
    assert result["images_per_sec"] > 0


@pytest.mark.slow
def test_cli_profile_reports_the_top_ops(capsys, tmp_path):
    result = run_cli(capsys, "--profile", str(tmp_path), "--profile-steps", "2")
    profile = result["profile"]
    assert profile["steps"] == 2 and profile["ops"] > 10
    assert pathlib.Path(profile["trace"]).is_file()
    for table in (profile["top"], profile["top_kinds"]):
        assert table and all(r["ms_per_step"] > 0 for r in table)
        shares = [r["share"] for r in table]
        assert shares == sorted(shares, reverse=True) and sum(shares) <= 1.0 + 1e-9
    # Kinds group numbered ops (fusion.1, fusion.2 -> fusion): never fewer ms than one op.
    assert profile["top_kinds"][0]["ms_per_step"] >= profile["top"][0]["ms_per_step"]


def _conv_layers():
    spec = importlib.util.spec_from_file_location(
        "bench_conv_layers", REPO / "benchmarks" / "conv_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name,overrides", [("resnet20", {}), ("resnet18", {"stem": "cifar"})])
def test_conv_layer_table_is_the_models_convolutions(name, overrides):
    table = _conv_layers().LAYERS[name]
    model = models.create(name, num_classes=10, **overrides)
    variables = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    kernels = [x.shape for x in jax.tree.leaves(variables["params"]) if x.ndim == 4]
    ours = sorted((k[0], k[2], k[3]) for k in kernels)
    listed = sorted((k, cin, cout) for _, cin, cout, k, _, count in table for _ in range(count))
    assert ours == listed


def test_conv_layers_times_every_direction_and_sums_a_step():
    bench = _conv_layers()
    layers = [(8, 3, 4, 3, 1, 1), (8, 4, 4, 3, 2, 2)]
    # jax_layer, not run_side: that sets XLA_FLAGS, which later tests' subprocesses inherit.
    times = [bench.jax_layer(layer, batch=2, repeats=1) for layer in layers]
    assert all(t[d] > 0 for t in times for d in bench.DIRECTIONS)
    fake = [{"forward": 1.0, "weight_grad": 2.0, "input_grad": 4.0}] * 2
    assert bench.step_conv_seconds(layers, fake) == 3.0 + 2 * 7.0  # The stem: no input grad.
    assert bench.flops(2, layers[1]) == 2.0 * 2 * 4 * 4 * 4 * 4 * 9
