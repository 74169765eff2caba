"""What makes the ResNet-50 train step faster on one GPU: every variant in one call.

    bash benchmarks/gpu_carry.sh                      # here, once: -> .gpu_carry/
    bash benchmarks/step_sweep.sh --out "$OUT"        # there, from the repo root

Times ``python -m resnet_flax.benchmark --model resnet50 --dtype bfloat16`` on synthetic
data in one process per variant (XLA flags are read once per process), in priority
order: the batch (256, 384, 512), the space-to-depth stem (an exact rewrite of the 7x7/2
conv: tests/models/test_parts.py), the input padded to 4 channels, 8 steps per dispatch
(``lax.scan``), and XLA flags. The base variant runs first and again last, so drift
over the call shows. Writes ``step_sweep.md`` (each variant's images/s against the
base's) and ``step_sweep.json`` to ``--out`` after every variant; with ``--budget S``
variants that would start after S seconds are listed as skipped.

``--smoke`` runs each variant at toy size (32 px, batch 4-8, 2 steps) with XLA's
optimizations off, to prove the sweep on a CPU (``JAX_PLATFORMS=cpu``).
This driver needs only the standard library.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shlex
import sys
import time

from gpu_suite import (
    _json_line,
    _last_line,
    ensure_packages,
    machine_header,
    row_env,
    run_command,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
BASE = ("-m", "resnet_flax.benchmark", "--no-compile-cache", "--model", "resnet50",
        "--dtype", "bfloat16", "--steps", "30", "--warmup", "5")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    what: str
    batch: int = 256
    args: tuple[str, ...] = ()
    xla_flags: str = ""


VARIANTS = (
    Variant("base", "imagenet stem, batch 256"),
    Variant("batch384", "batch 384", batch=384),
    Variant("batch512", "batch 512", batch=512),
    Variant("s2d", "space-to-depth stem", args=("--stem", "imagenet_s2d")),
    Variant("s2d_batch512", "space-to-depth stem, batch 512", batch=512,
            args=("--stem", "imagenet_s2d")),
    Variant("pad4", "input padded to 4 channels", args=("--input-channels", "4")),
    Variant("dispatch8", "8 steps per dispatch (training's loop)",
            args=("--loop", "dispatch", "--steps-per-dispatch", "8")),
    Variant("lhs", "XLA's latency-hiding scheduler",
            xla_flags="--xla_gpu_enable_latency_hiding_scheduler=true"),
    Variant("no_command_buffers", "XLA's command buffers (CUDA graphs) off",
            xla_flags="--xla_gpu_enable_command_buffer="),
    Variant("base_again", "the base variant again, last: the call's drift"),
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bash benchmarks/step_sweep.sh",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "runs" / "step_sweep"))
    p.add_argument("--carry", default=str(REPO / ".gpu_carry"), help="gpu_carry.sh's folder")
    p.add_argument("--site", default="/tmp/resnet_flax_gpu_site",
                   help="where the carried wheels are installed")
    p.add_argument("--variants", default=None, help="comma-separated names (default: all)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds after which no variant starts")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per variant")
    p.add_argument("--smoke", action="store_true", help="toy sizes, to prove it on a CPU")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    return p.parse_args(argv)


def command(variant: Variant, smoke: bool) -> list[str]:
    batch = max(4, variant.batch // 64) if smoke else variant.batch
    sizes = ("--image-size", "32", "--steps", "2", "--warmup", "1") if smoke else ()
    return [sys.executable, *BASE, "--batch", str(batch), *variant.args, *sizes]


def measure(variant: Variant, args, env: dict, log) -> dict:
    """One variant's record: its figures, or why it has none."""
    variant_env = dict(env)
    if variant.xla_flags:
        variant_env["XLA_FLAGS"] = " ".join(filter(None, (env.get("XLA_FLAGS"),
                                                           variant.xla_flags)))
    argv = command(variant, args.smoke)
    code, out, err, seconds = run_command(argv, variant_env, args.timeout, log)
    record = {"name": variant.name, "what": variant.what, "xla_flags": variant.xla_flags,
              "command": shlex.join(["python", *argv[1:]]), "seconds": round(seconds, 1)}
    if code:
        return {**record, "status": f"failed (exit {code})", "error": _last_line(err)}
    result = _json_line(out)
    return {**record, "status": "ok", "batch": result["batch"],
            "images_per_sec": result["images_per_sec"], "step_ms": result["step_ms"],
            "compile_s": result["compile_s"], "mfu": result.get("mfu")}


def markdown(header: dict, records: list[dict]) -> str:
    base = next((r["images_per_sec"] for r in records
                 if r["name"] == "base" and r["status"] == "ok"), None)
    lines = [f"# ResNet-50 train-step sweep ({header['date']})", "",
             f"Device: {header['device'].get('device_kind')} ({header['device'].get('platform')})"
             f"; command: `{header['command']}`" + ("; SMOKE (toy sizes)" if header["smoke"]
                                                    else ""), "",
             "| variant | what | img/s | vs base | step ms | compile s | status |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        ok = r["status"] == "ok"
        ratio = f"{r['images_per_sec'] / base:.3f}x" if ok and base else "-"
        lines.append(" | ".join(["", r["name"], r["what"] + (f" (`{r['xla_flags']}`)"
                                                            if r["xla_flags"] else ""),
                                 f"{r['images_per_sec']:,.0f}" if ok else "-", ratio,
                                 f"{r['step_ms']:.1f}" if ok else "-",
                                 f"{r['compile_s']:.1f}" if ok else "-",
                                 r["status"] + (f": {r['error']}" if not ok and "error" in r
                                                else ""), ""]).strip())
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for v in VARIANTS:
            print(f"{v.name:20} {v.what}")
        return 0
    chosen = [v for v in VARIANTS if args.variants is None or v.name in args.variants.split(",")]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "step_sweep.log", "a")

    def log(text: str) -> None:
        print(text, file=log_file, flush=True)

    installed = ensure_packages(pathlib.Path(args.carry) / "wheels", pathlib.Path(args.site), log)
    env = row_env(pathlib.Path(args.site), args.smoke)
    header = machine_header("step_sweep.sh", argv, args.smoke, env, installed)
    deadline = time.monotonic() + args.budget if args.budget else float("inf")
    records = []
    for variant in chosen:
        if time.monotonic() > deadline:
            records.append({"name": variant.name, "what": variant.what, "status":
                            "skipped (--budget spent)", "xla_flags": variant.xla_flags})
        else:
            records.append(measure(variant, args, env, log))
        print(f"[step_sweep] {variant.name}: {records[-1]['status']}", flush=True)
        (out / "step_sweep.json").write_text(json.dumps({**header, "variants": records},
                                                        indent=1) + "\n")
        (out / "step_sweep.md").write_text(markdown(header, records))
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
