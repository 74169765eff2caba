"""The GPU suite's figures: read from each row's output, as text, and the Markdown report."""

from __future__ import annotations

import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resnet_flax.speed import profiling  # noqa: E402  (only the standard library at import)

# Row -> (figure, comparison, threshold): checked in full runs only.
TARGETS = {"resnet50": ("images_per_sec", ">=", 7200.0),
           "resnet50_jpeg": ("share_of_step", ">=", 0.9),
           "fm_fast": ("train_seconds_to_94", "<=", 3.0)}


def bench_figures(result: dict) -> dict:
    memory = result.get("memory", {})
    return {k: result.get(k) for k in ("images_per_sec", "images_per_sec_p10",
                                       "images_per_sec_p90", "step_ms", "compile_s", "mfu",
                                       "gflops_per_sec", "params", "input_shape", "batch")} | {
        "device_peak_mb": memory.get("device_peak_mb"), "final_loss": result.get("final_loss")}


def bench_text(f: dict) -> str:
    parts = [f"batch {f['batch']}: **{f['images_per_sec']:,.0f} img/s**",
             f"{f['step_ms']:.1f} ms/step",
             f"compile {f['compile_s']:.1f} s"]
    if f.get("mfu"):
        parts.append(f"MFU {f['mfu']:.2f}")
    if f.get("device_peak_mb"):
        parts.append(f"peak {f['device_peak_mb'] / 1024:.1f} GiB")
    parts += [f"{ratio:.2f}x PyTorch {mode}" for mode, ratio in f.get("vs_torch", {}).items()]
    return ", ".join(parts)


def train_figures(workdir: pathlib.Path, wall: float) -> dict:
    epochs = [json.loads(ln) for ln in (workdir / "metrics.jsonl").read_text().splitlines()
              if ln.strip()]
    if not epochs:
        raise ValueError(f"{workdir}/metrics.jsonl has no epochs")
    first94 = next((e for e in epochs if e.get("test_accuracy", 0) >= 0.94), None)
    return {"epochs": len(epochs), "final_test_accuracy": epochs[-1]["test_accuracy"],
            "best_test_accuracy": max(e["test_accuracy"] for e in epochs),
            "train_seconds": epochs[-1]["train_seconds"],
            "compile_seconds": next((e["compile_seconds"] for e in epochs
                                     if "compile_seconds" in e), None),
            "epoch_to_94": first94["epoch"] if first94 else None,
            "train_seconds_to_94": first94["train_seconds"] if first94 else None,
            "images_per_sec_median": sorted(e["images_per_sec"] for e in epochs)[len(epochs) // 2],
            "wall_seconds": wall, "per_epoch": epochs}


def train_text(f: dict) -> str:
    to94 = (f"94% at epoch {f['epoch_to_94']} after **{f['train_seconds_to_94']:.1f} s** of "
            "training" if f["epoch_to_94"] else "94% not reached")
    return (f"{to94}; final **{100 * f['final_test_accuracy']:.2f}%** after {f['epochs']} "
            f"epochs (best {100 * f['best_test_accuracy']:.2f}%); training "
            f"{f['train_seconds']:.1f} s, compile {f['compile_seconds'] or 0:.1f} s, "
            f"{f['images_per_sec_median']:,.0f} img/s, wall {f['wall_seconds']:.0f} s")


def input_figures(out: str) -> dict:
    """``benchmarks/input_speed.py``'s rows (its JSON lines) as {row: images/s}, and the
    share of the step-alone speed that training from the JPEGs keeps."""
    rows = {r["row"]: r["img_s"] for r in map(json.loads, (
        ln for ln in out.splitlines() if ln.startswith("{")))}
    if "input+step" not in rows or "step alone" not in rows:
        raise ValueError("no input+step and step alone rows in the output")
    return {"images_per_sec": rows, "share_of_step": rows["input+step"] / rows["step alone"]}


def input_text(f: dict) -> str:
    rows = f["images_per_sec"]
    return (f"from JPEGs **{rows['input+step']:,.0f} img/s**, "
            f"{100 * f['share_of_step']:.0f}% of the step alone ({rows['step alone']:,.0f}); "
            f"the input alone {rows['train stream']:,.0f} img/s (a plain PIL loop on every "
            f"core {rows['train loop']:,.0f})")


def profile_text(f: dict) -> str:
    kinds = ", ".join(f"`{k['op']}` {100 * k['share']:.0f}%" for k in f["top_kinds"][:3])
    return f"{f['op_ms_per_step']:.2f} ms of device ops per step; top: {kinds}"


def target_status(row, figures: dict, smoke: bool) -> str:
    if row.name not in TARGETS or smoke:
        return row.target
    key, op, limit = TARGETS[row.name]
    value = figures.get(key)
    met = value is not None and (value >= limit if op == ">=" else value <= limit)
    return f"{row.target}: {'met' if met else 'NOT met'}"


def markdown(header: dict, records: list[dict]) -> str:
    info, v = header["device"], header["device"]["versions"]
    versions = ", ".join(f"{k} {x}" for k, x in v.items())
    lines = [f"# GPU suite{' (smoke size)' if header['smoke'] else ''}: "
             f"{info['device_kind']} x {info['device_count']} ({info['platform']}), "
             f"{header['date']}", "",
             f"Command: `{header['command']}`. {versions}. nvidia-smi: "
             f"{info.get('nvidia_smi') or 'n/a'}. Wheels installed from the carry: "
             f"{', '.join(header['installed']) or 'none needed'}.", "",
             "| row | what | figure | anchor | target | command |", "|---|---|---|---|---|---|"]
    for r in records:
        figure = r["figure"] if r["status"] == "ok" else f"{r['status']}: {r['figure']}"
        lines.append(" | ".join(["", r["name"], r["what"], figure, r["anchor"] or "-",
                                 r["target"] or "-", f"`{r['command']}`", ""]).strip())
    for r in records:
        if r["kind"] == "profile" and r["status"] == "ok":
            lines += ["", f"## {r['name']}: {r['what']}", "", profiling.markdown(r["figures"])]
    return "\n".join(lines) + "\n"
