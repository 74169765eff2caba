"""A ``jax.profiler`` trace of a few steps, summarised as the top ops by device time.

``trace(fn, steps, directory)`` records ``steps`` calls of ``fn`` with
``jax.profiler.trace(..., create_perfetto_trace=True)``; ``top_ops(directory)``
reads the Chrome-trace JSON that writes (plain JSON, so no TensorBoard profile
plugin is needed) and sums each op's time. On a GPU the ops are the kernels on the
``/device:GPU:N`` stream lines, named by their HLO op where the trace says; on a CPU,
where there is no device timeline, they are XLA's thunks on its worker threads.
"""

from __future__ import annotations

import collections
import gzip
import json
import pathlib
import re

# Host-side bookkeeping events that are not work done by the step's ops.
_CPU_NOISE = ("ThreadpoolListener", "ThunkExecutor::Execute", "SlinkyThreadPool::Await",
              "end: ")


def trace(fn, steps: int, directory: str | pathlib.Path) -> pathlib.Path:
    """Runs ``fn()`` ``steps`` times under the profiler; returns the perfetto trace's path."""
    import jax

    directory = pathlib.Path(directory)
    with jax.profiler.trace(str(directory), create_perfetto_trace=True):
        for _ in range(steps):
            jax.block_until_ready(fn())
    found = sorted(directory.glob("plugins/profile/*/perfetto_trace.json.gz"))
    if not found:
        raise FileNotFoundError(f"no perfetto_trace.json.gz under {directory}")
    return found[-1]


def _names(events, kind: str) -> dict:
    return {(e["pid"], e.get("tid")) if kind == "thread_name" else e["pid"]: e["args"]["name"]
            for e in events if e.get("ph") == "M" and e.get("name") == kind}


def _device_threads(events, processes, threads) -> set:
    """(pid, tid) of the device lines that hold kernels.

    A GPU's trace also has lines derived from them ("XLA Modules", "XLA Ops", "Steps")
    that would count each kernel twice; the "Stream #N" lines are the kernels as run.
    """
    device = {pid for pid, name in processes.items() if name.startswith("/device:")}
    lines = {(e["pid"], e.get("tid")) for e in events
             if e.get("ph") == "X" and e["pid"] in device}
    streams = {line for line in lines if threads.get(line, "").startswith("Stream")}
    return streams or lines


def _op_events(events):
    """(op name, kernel name, microseconds) of the device's work, or XLA:CPU's."""
    processes = _names(events, "process_name")
    threads = _names(events, "thread_name")
    device_lines = _device_threads(events, processes, threads)
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        line = (e["pid"], e.get("tid"))
        name, args = e.get("name", ""), e.get("args") or {}
        if device_lines:
            if line in device_lines:
                yield args.get("hlo_op") or args.get("long_name") or name, name, e["dur"]
        elif threads.get(line) != "python" and not name.startswith(_CPU_NOISE) \
                and not name.startswith("$"):
            yield name, name, e["dur"]


def _kind(op: str) -> str:
    """``transpose_copy_fusion.21`` -> ``transpose_copy_fusion``: one line per kind of op."""
    return re.sub(r"[._]\d+$", "", op)


def _ranked(total, calls, kernel, steps: int, all_us: float, count: int) -> list[dict]:
    return [{"op": op, "kernel": kernel[op], "ms_per_step": us / 1e3 / steps,
             "share": us / all_us if all_us else 0.0, "calls_per_step": calls[op] / steps}
            for op, us in total.most_common(count)]


def top_ops(trace_path: str | pathlib.Path, steps: int, count: int = 15) -> dict:
    """The ``count`` ops, and kinds of op, with the most time per step, and their share."""
    with gzip.open(trace_path, "rt") as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    total, calls, kinds, kind_calls = (collections.Counter() for _ in range(4))
    kernel = {}
    for op, kernel_name, micros in _op_events(events):
        total[op] += micros
        calls[op] += 1
        kinds[_kind(op)] += micros
        kind_calls[_kind(op)] += 1
        kernel.setdefault(op, kernel_name)
        kernel.setdefault(_kind(op), kernel_name)
    all_us = sum(total.values())
    return {"trace": str(trace_path), "steps": steps, "op_ms_per_step": all_us / 1e3 / steps,
            "ops": len(total),
            "top": _ranked(total, calls, kernel, steps, all_us, count),
            "top_kinds": _ranked(kinds, kind_calls, kernel, steps, all_us, count)}


def _table(rows: list[dict], header: str) -> list[str]:
    lines = [f"| {header} | ms/step | share | calls/step |", "|---|---|---|---|"]
    for r in rows:
        op = r["op"] if len(r["op"]) <= 80 else r["op"][:77] + "..."
        lines.append(f"| `{op}` | {r['ms_per_step']:.3f} | {100 * r['share']:.1f}% | "
                     f"{r['calls_per_step']:g} |")
    return lines


def markdown(summary: dict) -> str:
    """The summary as two Markdown tables: kinds of op, then single ops."""
    return "\n".join([
        f"{summary['ops']} distinct ops, {summary['op_ms_per_step']:.2f} ms of op time per "
        f"step (over {summary['steps']} steps)", "",
        *_table(summary["top_kinds"], "kind of op"), "",
        *_table(summary["top"], "op")])
