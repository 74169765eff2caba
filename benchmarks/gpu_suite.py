"""Measure the project on a bare GPU machine: one command, every figure in one table.

    bash benchmarks/gpu_carry.sh                  # here, once: -> .gpu_carry/ (git-ignored)
    bash benchmarks/gpu_suite.sh --out "$OUT"     # there, from the repo root

Installs the carried wheels the machine lacks (into a scratch ``--site``, put on
``PYTHONPATH``; nothing is fetched), then runs each row as its own process with the
persistent compilation cache off (so compile times are real) and writes
``gpu_suite.md``, ``gpu_suite.json`` and ``gpu_suite.log`` to ``--out`` after every
row, so a run cut short keeps what it measured; with ``--budget S`` rows that would
start after S seconds are listed as skipped, for a second call with ``--rows``. Rows
(``--list``, in priority order): the train-step benchmark of ResNet-50/18/34/101
(bfloat16, batch 256; ResNet-50 under jit and pmap) and of the CIFAR ResNet-20/56/18
(batch 512) on synthetic data,
each beside PyTorch's AMP step of the same model on the same device, eager and under
``torch.compile``, when torch sees one;
``configs/fashion_mnist_fast.py`` in bfloat16 (time to 94%) and
``configs/fashion_mnist.py`` (the tutorial recipe) on the carried Fashion-MNIST; and
the profile of two train steps as the top ops by device time; and ResNet-50 trained
from ImageNet-like JPEGs decoded on the machine's cores against its step alone (the JPEGs
generated and built into a folder dataset there, under ``--scratch``: the build needs
no TensorFlow).

``--smoke`` runs every row at a toy size (32 px, batch 4, one epoch of batch 8), with
XLA's optimizations off (compiling, not running, is what a toy size costs on a CPU),
so the whole suite can be proven on a CPU (``JAX_PLATFORMS=cpu``) with a tiny dataset.
This driver needs only the standard library.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

from gpu_report import (
    bench_figures,
    bench_text,
    input_figures,
    input_text,
    markdown,
    profile_text,
    target_status,
    train_figures,
    train_text,
)
from gpu_rows import ROWS, Row

REPO = pathlib.Path(__file__).resolve().parents[1]
CARRY = REPO / ".gpu_carry"

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bash benchmarks/gpu_suite.sh",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "runs" / "gpu_suite"),
                   help="where gpu_suite.{md,json,log} go (default: $OUT, else runs/gpu_suite)")
    p.add_argument("--carry", default=str(CARRY), help="gpu_carry.sh's folder")
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default: <carry>/tfds)")
    p.add_argument("--site", default="/tmp/resnet_flax_gpu_site",
                   help="where missing wheels are installed")
    p.add_argument("--scratch", default="/tmp/resnet_flax_gpu_suite",
                   help="training workdirs and traces (not --out: they are many files)")
    p.add_argument("--rows", default=None, help="comma-separated row names (default: all)")
    p.add_argument("--smoke", action="store_true", help="toy sizes, to prove the suite on a CPU")
    p.add_argument("--row-timeout", type=float, default=480.0, help="seconds per row")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole suite: rows that would start later are "
                        "listed as skipped, to run with --rows in another call")
    p.add_argument("--list", action="store_true", help="print the rows and exit")
    args = p.parse_args(argv)
    known = [r.name for r in ROWS]
    args.selected = args.rows.split(",") if args.rows else known
    unknown = sorted(set(args.selected) - set(known))
    if unknown:
        p.error(f"unknown rows {unknown}; the rows are {known}")
    return args


def merge_args(args: tuple[str, ...], overrides: tuple[str, ...]) -> list[str]:
    """``args`` with each ``--flag value`` / ``--key=value`` of ``overrides`` replacing its own."""
    out = list(args)
    i = 0
    while i < len(overrides):
        flag = overrides[i]
        if "=" in flag:
            key = flag.split("=", 1)[0] + "="
            out = [a for a in out if not a.startswith(key)] + [flag]
            i += 1
            continue
        value = overrides[i + 1]
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
        i += 2
    return out


def _dist(wheel: pathlib.Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return re.sub(r"[-_.]+", "-", name).lower(), version


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_packages(wheels: pathlib.Path, site: pathlib.Path, log) -> list[str]:
    """Installs each carried wheel this Python lacks at that version; returns their names.

    The carry holds what the machine lacks plus pinned packages (protobuf), so a
    different installed version is shadowed on the rows' PYTHONPATH, never replaced.
    """
    sys.path.insert(0, str(site))  # So a site from an earlier run counts as installed.
    needed = [w for w in sorted(wheels.glob("*.whl"))
              if _installed_version(_dist(w)[0]) != _dist(w)[1]]
    if needed:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
               "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site),
               *map(str, needed)]
        log(f"$ {shlex.join(cmd)}")
        subprocess.run(cmd, check=True)
    return ["==".join(_dist(w)) for w in needed]


def row_env(site: pathlib.Path, smoke: bool = False) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2",
               RESNET_FLAX_COMPILE_CACHE="0")
    if smoke:  # Its figures mean nothing; that every row runs is what it proves.
        env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(site), env.get("PYTHONPATH", "")) if p)
    return env


_DEVICE_INFO = """
import importlib.metadata as m, json, platform, jax
d = jax.devices()[0]
v = {}
for n in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "torch",
          "tensorflow-datasets"):
    try:
        v[n] = m.version(n)
    except m.PackageNotFoundError:
        pass
v["python"] = platform.python_version()
print(json.dumps({"platform": d.platform, "device_kind": d.device_kind,
                  "device_count": jax.device_count(), "versions": v}))
"""


def device_info(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _DEVICE_INFO], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True)
        info["nvidia_smi"] = smi.stdout.strip() or None
    except OSError:
        info["nvidia_smi"] = None
    return info


def machine_header(script: str, argv, smoke: bool, env: dict, installed: list[str]) -> dict:
    """What every GPU-machine driver's report starts with: date, the command as typed
    (``bash benchmarks/<script> ...``), the device and the wheels it installed."""
    command = ["bash", f"benchmarks/{script}", *(argv if argv is not None else sys.argv[1:])]
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "smoke": smoke,
            "command": shlex.join(command), "device": device_info(env), "installed": installed}


def run_command(argv: list[str], env: dict, timeout: float, log) -> tuple[int, str, str, float]:
    """(exit status, stdout, stderr, seconds); both streams also go to the log."""
    log(f"$ {shlex.join(argv)}")
    tic = time.perf_counter()
    try:
        proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        code, out, err = 124, _text(e.stdout), _text(e.stderr)
    seconds = time.perf_counter() - tic
    log(out + err + f"[exit {code} after {seconds:.1f} s]")
    return code, out, err, seconds


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def _json_line(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise ValueError("no JSON line in the output")
    return json.loads(lines[-1])


# The PyTorch anchors of a bench row: eager, and torch.compile (the best PyTorch step).
TORCH_MODES = {"eager": (), "torch.compile": ("--compile",)}


def torch_anchor(row: Row, args, env: dict, torch_device: str | None, log) -> tuple[str, dict]:
    """PyTorch's AMP step of the same model on the same device, eager and compiled:
    (text, {mode: images/s})."""
    if not row.torch_model:
        return "", {}
    if torch_device is None:
        return "PyTorch anchor skipped: torch/torchvision not importable", {}
    merged = merge_args(row.args, row.smoke_args if args.smoke else ())
    sizes = [x for i, flag in enumerate(merged[:-1])
             if flag in ("--batch", "--steps", "--warmup", "--image-size")
             for x in (flag, merged[i + 1])]
    texts, speeds = [], {}
    for mode, flags in TORCH_MODES.items():
        argv = [sys.executable, "benchmarks/torch_reference.py", "--model", row.torch_model,
                "--device", torch_device, "--dtype", "bfloat16", *sizes, *flags]
        code, out, err, _ = run_command(argv, env, args.row_timeout, log)
        if code:
            texts.append(f"PyTorch {mode} failed: {_last_line(err)}")
            continue
        r = _json_line(out)
        speeds[mode] = r["images_per_sec"]
        texts.append(f"PyTorch {r['versions']['torch']} {mode} AMP channels_last, same "
                     f"device: {r['images_per_sec']:,.0f} img/s "
                     f"({shlex.join(['python', *argv[1:]])})")
    return "; ".join(texts), speeds


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


def run_row(row: Row, args, env: dict, data_dir: pathlib.Path, torch_device, log) -> dict:
    argv = [sys.executable, *merge_args(row.args, row.smoke_args if args.smoke else ())]
    scratch = pathlib.Path(args.scratch) / row.name
    if row.kind == "input":  # Generated and built here (once), from the repository alone.
        argv += ["--data_dir", str(scratch)]
    elif row.kind == "train":
        subprocess.run(["rm", "-rf", str(scratch)], check=True)
        argv += ["--workdir", str(scratch), f"--config.data_dir={data_dir}"]
    elif row.kind == "profile":
        argv += ["--profile", str(scratch)]
    record = {"name": row.name, "kind": row.kind, "what": row.what,
              "command": shlex.join(["python", *argv[1:]]), "anchor": row.anchor}
    code, out, err, seconds = run_command(argv, env, args.row_timeout, log)
    record["seconds"] = seconds
    if code:
        reason = "timed out" if code == 124 else f"exit {code}"
        return {**record, "status": f"failed ({reason})", "figure": _last_line(err),
                "target": row.target}
    if row.kind == "bench":
        figures = bench_figures(_json_line(out))
        text = bench_text(figures)
        anchor, torch_speeds = torch_anchor(row, args, env, torch_device, log)
        record["anchor"] = "; ".join(a for a in (anchor, row.anchor) if a)
        # Ours over each PyTorch step: against torch.compile, the best PyTorch has.
        figures["vs_torch"] = {mode: figures["images_per_sec"] / speed
                               for mode, speed in torch_speeds.items()}
        text = bench_text(figures)
    elif row.kind == "train":
        figures = train_figures(scratch, seconds)
        text = train_text(figures)
    elif row.kind == "input":
        figures = input_figures(out)
        text = input_text(figures)
    else:
        figures = _json_line(out)["profile"]
        text = profile_text(figures)
    return {**record, "status": "ok", "figure": text, "figures": figures,
            "target": target_status(row, figures, args.smoke)}


def torch_device_for(env: dict) -> str | None:
    code = "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return out.stdout.strip() or None if out.returncode == 0 else None


def skipped(row: Row, status: str) -> dict:
    return {"name": row.name, "kind": row.kind, "what": row.what, "command": "",
            "status": status, "figure": "", "anchor": row.anchor, "target": row.target}


def write_outputs(out: pathlib.Path, header: dict, records: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_suite.json").write_text(json.dumps({**header, "rows": records}, indent=1) + "\n")
    (out / "gpu_suite.md").write_text(markdown(header, records))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for row in ROWS:
            print(f"{row.name:18} {row.what}")
        return 0
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "gpu_suite.log", "a")

    def log(text: str) -> None:
        print(text, file=log_file, flush=True)

    carry = pathlib.Path(args.carry)
    site = pathlib.Path(args.site)
    installed = ensure_packages(carry / "wheels", site, log)
    env = row_env(site, args.smoke)
    data_dir = pathlib.Path(args.data_dir) if args.data_dir else carry / "tfds"
    header = machine_header("gpu_suite.sh", argv, args.smoke, env, installed)
    torch_device = torch_device_for(env)
    records = []
    deadline = time.monotonic() + args.budget if args.budget else float("inf")
    for row in ROWS:
        if row.name not in args.selected:
            continue
        left = deadline - time.monotonic()
        if left < 30:  # No row finishes in less, on a GPU: compile alone takes longer.
            records.append(skipped(row, "skipped (--budget spent): run it with --rows"))
            write_outputs(out, header, records)
            continue
        args.row_timeout = min(args.row_timeout, left)
        print(f"[gpu_suite] {row.name}: {row.what}", flush=True)
        try:
            record = run_row(row, args, env, data_dir, torch_device, log)
        except (ValueError, KeyError, OSError) as e:  # A row's output we could not read.
            record = {**skipped(row, "failed (unreadable output)"), "figure": str(e)}
        records.append(record)
        print(f"[gpu_suite] {row.name}: {record['status']}: {record['figure']}", flush=True)
        write_outputs(out, header, records)
    print(f"[gpu_suite] wrote {out / 'gpu_suite.md'} and {out / 'gpu_suite.json'}")
    return 1 if any(r["status"] != "ok" for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
