"""The GPU suite and its carry script, proven on the CPU.

The slow test does what issue 11 asks of a bare GPU machine: a fresh venv with only
jax/flax/optax/orbax (no TensorFlow, TFDS or ml-collections), the carry prepared for
it, and a row of every kind run end to end at the smoke size with JAX_PLATFORMS=cpu:
a bench, a training, a profile. The other rows differ from those only in their model,
config or sizes; their command lines (full and smoke) are parsed by the benchmark's
and main's own parsers, and their models resolved, by
test_every_rows_command_line_is_valid.
"""

import gzip
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

from resnet_flax.cli import benchmark
from resnet_flax.speed import profiling

REPO = pathlib.Path(__file__).resolve().parents[2]


def _load(name: str):
    """A benchmarks/ module, loaded from its file without putting benchmarks/ on sys.path."""
    if name in sys.modules:
        return sys.modules[name]
    if name == "gpu_suite":
        _load("gpu_report")  # Which it imports by name.
        _load("gpu_rows")
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _write_trace(path: pathlib.Path, events: list[dict]) -> pathlib.Path:
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    return path


def _meta(kind, pid, name, tid=None):
    return {"ph": "M", "name": kind, "pid": pid, "tid": tid, "args": {"name": name}}


def test_profile_summary_counts_stream_kernels_by_hlo_op(tmp_path):
    events = [_meta("process_name", 1, "/host:CPU"), _meta("thread_name", 1, "python", 7),
              _meta("process_name", 2, "/device:GPU:0"),
              _meta("thread_name", 2, "Stream #13(Compute)", 1),
              _meta("thread_name", 2, "XLA Modules", 2),
              {"ph": "X", "pid": 2, "tid": 2, "name": "jit_step", "dur": 1000.0},
              {"ph": "X", "pid": 1, "tid": 7, "name": "PjitFunction(step)", "dur": 900.0},
              {"ph": "X", "pid": 1, "tid": 8, "name": "cuLaunchKernel", "dur": 50.0}]
    for _ in range(2):
        events += [
            {"ph": "X", "pid": 2, "tid": 1, "name": "sm90_xmma_fprop", "dur": 300.0,
             "args": {"hlo_op": "convolution.3"}},
            {"ph": "X", "pid": 2, "tid": 1, "name": "sm90_xmma_dgrad", "dur": 100.0,
             "args": {"hlo_op": "convolution.7"}},
            {"ph": "X", "pid": 2, "tid": 1, "name": "loop_add_fusion", "dur": 100.0,
             "args": {"hlo_op": "add_fusion.2"}}]
    summary = profiling.top_ops(_write_trace(tmp_path / "t.json.gz", events), steps=2)
    assert summary["ops"] == 3 and summary["op_ms_per_step"] == pytest.approx(0.5)
    top = summary["top"][0]
    assert (top["op"], top["kernel"], top["calls_per_step"]) == ("convolution.3",
                                                                 "sm90_xmma_fprop", 1)
    assert top["ms_per_step"] == pytest.approx(0.3) and top["share"] == pytest.approx(0.6)
    kinds = {k["op"]: k["share"] for k in summary["top_kinds"]}
    assert kinds == pytest.approx({"convolution": 0.8, "add_fusion": 0.2})
    assert "| `convolution` | 0.400 | 80.0% | 2 |" in profiling.markdown(summary)


def test_profile_summary_on_cpu_keeps_xla_threads_only(tmp_path):
    events = [_meta("process_name", 1, "/host:CPU"), _meta("thread_name", 1, "python", 7),
              _meta("thread_name", 1, "tf_XLAPjRtCpuClient", 8),
              {"ph": "X", "pid": 1, "tid": 7, "name": "$profiler.py:307 trace", "dur": 1e6},
              {"ph": "X", "pid": 1, "tid": 8, "name": "fusion.1", "dur": 30.0},
              {"ph": "X", "pid": 1, "tid": 8, "name": "end: fusion.1", "dur": 1.0},
              {"ph": "X", "pid": 1, "tid": 8, "name": "SlinkyThreadPool::Await", "dur": 5.0}]
    summary = profiling.top_ops(_write_trace(tmp_path / "t.json.gz", events), steps=1)
    assert [r["op"] for r in summary["top"]] == ["fusion.1"]


def test_smoke_sizes_replace_the_full_ones():
    suite = _load("gpu_suite")
    assert suite.merge_args(("-m", "x", "--batch", "256", "--config.a=1", "--flag"),
                            ("--batch", "4", "--config.a=2", "--new", "3")) == [
        "-m", "x", "--batch", "4", "--flag", "--config.a=2", "--new", "3"]


def test_every_rows_command_line_is_valid(monkeypatch):
    from resnet_flax import cli, models

    monkeypatch.chdir(REPO)  # The rows name their config files from the repo root.
    suite = _load("gpu_suite")
    input_speed = _load("input_speed")
    for row in suite.ROWS:
        for argv in (list(row.args), suite.merge_args(row.args, row.smoke_args)):
            if argv[0] == "benchmarks/crop_resize.py":
                assert row.kind == "bench" and _load("crop_resize").parse_args(argv[1:])
                continue
            if argv[0] == "benchmarks/input_speed.py":
                args = input_speed.parse_args(argv[1:])
                assert row.kind == "input" and args.step and args.workers, row.name
                models.spec(args.step)
                continue
            module, flags = argv[1], argv[2:]
            if module == "resnet_flax.benchmark":
                args = benchmark.parse_args(flags)  # SystemExit on a bad flag.
                models.spec(args.model)
                kind = "profile" if "--profile-steps" in flags else "bench"
                assert row.kind == kind, row.name
            else:
                assert (module, row.kind) == ("resnet_flax.main", "train")
                cli.check_config_args(flags)  # SystemExit on a missing file or field.


def test_time_to_accuracy_is_the_first_epoch_that_reaches_it(tmp_path):
    report = _load("gpu_report")
    rows = [{"epoch": 1, "test_accuracy": 0.90, "train_seconds": 2.0, "images_per_sec": 9.0,
             "compile_seconds": 5.0},
            {"epoch": 2, "test_accuracy": 0.941, "train_seconds": 4.0, "images_per_sec": 10.0},
            {"epoch": 3, "test_accuracy": 0.939, "train_seconds": 6.0, "images_per_sec": 11.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    f = report.train_figures(tmp_path, wall=30.0)
    assert (f["epoch_to_94"], f["train_seconds_to_94"]) == (2, 4.0)
    assert (f["final_test_accuracy"], f["best_test_accuracy"]) == (0.939, 0.941)
    assert f["compile_seconds"] == 5.0 and f["train_seconds"] == 6.0
    assert "after **4.0 s** of training" in report.train_text(f)
    row = next(r for r in _load("gpu_suite").ROWS if r.name == "fm_fast")
    assert report.target_status(row, f, smoke=False).endswith("NOT met")  # 4.0 s > 3 s.
    assert report.target_status(row, {**f, "train_seconds_to_94": 2.5}, False).endswith(": met")


def test_carry_takes_what_the_gpu_machine_lacks():
    carry = _load("gpu_carry")
    target = carry.target_from_file()
    assert target["python"] == "3.12" and "jax" in target["packages"]
    wanted = carry.missing_wheels(target)
    assert {"tensorflow-datasets", "ml-collections", "array-record", "tensorboardx",
            "protobuf"} <= set(wanted)  # protobuf: pinned, its version matters.
    assert not {"jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "pyarrow",
                "tensorflow", "tensorflow-cpu", "torch"} & set(wanted)
    assert wanted["ml-collections"] == importlib.metadata.version("ml-collections")


def test_carry_checks_each_wheel_installs_on_the_target(tmp_path):
    carry = _load("gpu_carry")
    for name, ok in (("a-1.0-py3-none-any.whl", True),
                     ("b-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", True),
                     ("c-1.0-cp38-abi3-manylinux2014_x86_64.whl", True),
                     ("d-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", False),
                     ("e-1.0-cp312-cp312-macosx_11_0_arm64.whl", False)):
        (tmp_path / name).write_bytes(b"")
        if ok:
            assert carry.wheel_record(tmp_path / name, "3.12")["file"] == name
        else:
            with pytest.raises(SystemExit, match="does not install on Python 3.12"):
                carry.wheel_record(tmp_path / name, "3.12")


BARE = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint")


def _requirement_closure(names) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions of ``names`` and of everything they require (with
    the extras asked for), as pip would install them: canonical name -> distribution."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found, extras_of, todo = {}, {}, [(n, frozenset()) for n in names]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in found and extras <= extras_of[key]:
            continue
        found[key] = found.get(key) or importlib.metadata.distribution(name)
        extras_of[key] = extras_of.get(key, frozenset()) | extras
        for req in map(Requirement, found[key].requires or []):
            wanted = {"", *extras_of[key]}
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
                todo.append((req.name, frozenset(req.extras)))
    return found


def _bare_venv(path: pathlib.Path) -> pathlib.Path:
    """A fresh venv with only jax/jaxlib/flax/optax/orbax and their requirements, at the
    versions tested here: each distribution's files linked from this environment (what
    pip would unpack from the same wheels, in a second instead of ~25 s)."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    site = pathlib.Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    for dist in _requirement_closure(BARE).values():
        tops = {pathlib.PurePath(f).parts[0] for f in dist.files or []}
        for top in sorted(t for t in tops if t not in ("..", "__pycache__")):
            link = site / top
            if not link.exists():  # A namespace folder two distributions share: once.
                link.symlink_to(pathlib.Path(dist.locate_file(top)).resolve())
    return python


def _clean_env(**extra) -> dict:
    """The user's environment, without this test session's XLA and Python settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", "PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


# One row of each kind; see the module docstring.
SMOKED_ROWS = ("fm_fast", "resnet50_jpeg", "crop_resize", "profile_fm_fast", "cifar_resnet20")


@pytest.mark.slow
def test_suite_runs_a_row_of_each_kind_in_a_bare_venv(tiny_data_dir, tmp_path):
    python = _bare_venv(tmp_path / "venv")
    for module in ("tensorflow", "tensorflow_datasets", "ml_collections", "tensorboardX"):
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
        assert probe.returncode != 0, f"{module} is importable in the bare venv"

    carry = tmp_path / "carry"
    made = subprocess.run(
        ["bash", "benchmarks/gpu_carry.sh", "--target-python", str(python), "--tfds-dir",
         str(tiny_data_dir), "--out", str(carry)], cwd=REPO, capture_output=True, text=True,
        env=_clean_env(PYTHON=sys.executable))
    assert made.returncode == 0, made.stderr[-2000:]
    manifest = json.loads((carry / "manifest.json").read_text())
    carried = {w["name"] for w in manifest["wheels"]}
    assert {"tensorflow-datasets", "ml-collections", "array-record"} <= carried
    assert not {"jax", "flax", "tensorflow", "tensorflow-cpu", "pyarrow"} & carried
    assert (carry / "tfds" / "fashion_mnist" / "3.0.1" / "dataset_info.json").is_file()

    out = tmp_path / "out"
    run = subprocess.run(
        ["bash", "benchmarks/gpu_suite.sh", "--smoke", "--carry", str(carry), "--out", str(out),
         "--site", str(tmp_path / "site"), "--scratch", str(tmp_path / "scratch"),
         "--rows", ",".join(SMOKED_ROWS)],
        cwd=REPO, capture_output=True, text=True,
        env=_clean_env(PYTHON=str(python), JAX_PLATFORMS="cpu"))
    log = (out / "gpu_suite.log").read_text() if (out / "gpu_suite.log").exists() else ""
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:] + log[-3000:]

    report = json.loads((out / "gpu_suite.json").read_text())
    suite = _load("gpu_suite")
    assert [r["name"] for r in report["rows"]] == [
        r.name for r in suite.ROWS if r.name in SMOKED_ROWS]
    assert all(r["status"] == "ok" for r in report["rows"])
    assert report["device"]["platform"] == "cpu" and report["smoke"]
    assert any(p.startswith("tensorflow-datasets==") for p in report["installed"])
    rows = {r["name"]: r for r in report["rows"]}
    f = rows["cifar_resnet20"]["figures"]
    assert f["images_per_sec"] > 0 and f["compile_s"] > 0 and f["batch"] == 4
    assert f["params"] == 269_722
    f = rows["fm_fast"]["figures"]
    assert f["epochs"] == 1 and 0 <= f["final_test_accuracy"] <= 1
    assert f["train_seconds"] > 0 and f["compile_seconds"] > 0
    assert rows["profile_fm_fast"]["figures"]["top"][0]["ms_per_step"] > 0
    assert rows["crop_resize"]["figures"]["images_per_sec"] > 0
    f = rows["resnet50_jpeg"]["figures"]
    assert f["images_per_sec"]["input+step"] > 0 and f["images_per_sec"]["train loop"] > 0
    assert f["share_of_step"] > 0
    table = (out / "gpu_suite.md").read_text()
    assert all(f"| {name} |" in table for name in rows)
    assert "## profile_fm_fast" in table and "jax 0.10" in table


def test_rows_past_the_budget_are_listed_as_skipped(tmp_path):
    suite = _load("gpu_suite")
    (tmp_path / "carry" / "wheels").mkdir(parents=True)
    code = suite.main(["--budget", "1", "--rows", "resnet50,fm_fast", "--out",
                       str(tmp_path / "out"), "--carry", str(tmp_path / "carry"),
                       "--site", str(tmp_path / "site")])
    assert code == 1  # Not every row was measured.
    report = json.loads((tmp_path / "out" / "gpu_suite.json").read_text())
    assert [(r["name"], r["status"]) for r in report["rows"]] == [
        (name, "skipped (--budget spent): run it with --rows") for name in ("resnet50", "fm_fast")]
    assert "| resnet50 |" in (tmp_path / "out" / "gpu_suite.md").read_text()
