"""An experiment's results: ``results.csv``, ``results.md`` and ``curves.png`` (or
``scatter.png``) from its runs' ``metrics.jsonl``, mean +- std over seeds."""

from __future__ import annotations

import csv
import json
import pathlib
from collections import defaultdict

import numpy as np

from experiments import claims
from experiments.grid import Run
from experiments.runner import RECORD, finished
from resnet_flax.config import model_overrides
from resnet_flax.data import datasets
from resnet_flax.models import layer_table
from resnet_flax.workdir import plots

COLUMNS = ("final_test_error", "final_test_accuracy", "best_test_accuracy",
           "final_train_loss", "final_train_error", "first_train_loss", "wall_seconds")


def _rows(run: Run) -> list[dict]:
    path = run.workdir / "metrics.jsonl"
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if "epoch" in r]


def run_figures(run: Run) -> dict | None:
    """A finished run's final and best figures (None for one unfinished or without an
    epoch: a table counts whole runs only)."""
    rows = _rows(run)
    if not rows or not finished(run):
        return None
    last = rows[-1]
    wall = json.loads((run.workdir / RECORD).read_text())["wall_seconds"]
    return {"final_test_error": 1 - last["test_accuracy"],
            "final_test_accuracy": last["test_accuracy"],
            "best_test_accuracy": max(r["test_accuracy"] for r in rows),
            "final_train_loss": last["train_loss"],
            "final_train_error": 1 - last["train_accuracy"],
            "first_train_loss": rows[0]["train_loss"], "wall_seconds": wall}


def size_of(run: Run) -> tuple[int, int]:
    """(parameters, MACs per image) of the run's model on its dataset."""
    spec = datasets.get(run.config.dataset, run.config.data_dir or None)
    s = layer_table.summarize(run.config.model, spec.image_shape, spec.num_classes,
                          **model_overrides(run.config))
    return s.params, s.macs


def table(runs: list[Run]) -> list[dict]:
    """One row per arm: mean and std over its seeds of every ``COLUMNS`` figure."""
    by_arm: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_arm[run.arm].append(run)
    out = []
    for arm, arm_runs in by_arm.items():
        figures = [f for f in map(run_figures, arm_runs) if f is not None]
        params, macs = size_of(arm_runs[0])
        row = {"arm": arm, "model": arm_runs[0].config.model, "seeds": len(figures),
               "params": params, "macs": macs}
        for column in COLUMNS:
            values = np.array([f[column] for f in figures], float)
            row[f"{column}_mean"] = float(values.mean()) if len(values) else float("nan")
            row[f"{column}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out.append(row)
    return out


def _pm(row: dict, column: str, percent: bool = True) -> str:
    """``mean +- std``; the mean alone for one seed (no spread was measured)."""
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    scale, digits = (100, 2) if percent else (1, 4)
    if row["seeds"] < 2:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} +- {scale * std:.{digits}f}"


def markdown(module, rows: list[dict], command: str, figures: list[str], scale: str,
             pending: int) -> str:
    head = ("| arm | model | seeds | test error % | best test acc % | train error % | "
            "train loss | params | MACs | wall s |")
    done = sum(r["seeds"] for r in rows)
    runs = "1 run" if done == 1 else f"{done} runs"
    if pending:
        state = (f"{runs} finished, {pending} not yet: the table and the verdicts count the "
                 "finished ones.")
    else:
        state = "Its 1 run finished." if done == 1 else f"All {runs} finished."
    recipe = ", ".join(f"{k}={v}" for k, v in module.SCALES[scale].items() if k != "arms")
    lines = [f"# {module.TITLE}", "", f"{module.SOURCE}. Published finding: {module.FINDING}",
             "", f"Scale: `{scale}`. {state}", "",
             f"The scale's settings, over the base recipe of "
             f"`experiments/{module.__name__.rsplit('.', 1)[-1]}.py`: {recipe}.", "",
             f"Command: `{command}`", "",
             "## What shows", "", *(f"- {line}" for line in
                                    claims.verdicts(getattr(module, "CLAIMS", ()), rows)),
             "", "A finding shows when the arms are in its order by more than their seeds' "
             "standard deviations added; one seed cannot tell.", "",
             *([note, ""] if (note := getattr(module, "NOTES", {}).get(scale)) else []),
             "## Table", "", head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['model']} | {r['seeds']} | {_pm(r, 'final_test_error')} | "
            f"{_pm(r, 'best_test_accuracy')} | {_pm(r, 'final_train_error')} | "
            f"{_pm(r, 'final_train_loss', False)} | {r['params']:,} | "
            f"{layer_table.format_count(r['macs'])} | {r['wall_seconds_mean']:.0f} |")
    lines += ["", "Errors are final-epoch figures, mean +- std over seeds (std with n - 1; "
              "the mean alone where one seed ran).",
              "", *(f"![{module.TITLE}]({figure})" for figure in figures), ""]
    return "\n".join(lines)


def write(module, runs: list[Run], workdir: pathlib.Path, command: str,
          scale: str) -> list[dict]:
    """Writes results.csv, results.md and its figures from the finished runs; returns
    the table."""
    rows = table(runs)
    pending = sum(not finished(run) for run in runs)
    with open(workdir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figures = [_figure(module, rows, runs, workdir)]
    sweep = getattr(module, "BATCH_SWEEP", None)
    if sweep:  # Error against the images BatchNorm's statistics span.
        by_arm = {row["arm"]: row for row in rows}
        plots.error_by_batch({norm: {n: by_arm[arm] for n, arm in arms.items() if arm in by_arm}
                              for norm, arms in sweep.items()}, workdir / "batch.png",
                             "Test error against BatchNorm's batch")
        figures.append("batch.png")
    (workdir / "results.md").write_text(markdown(module, rows, command, figures, scale,
                                                 pending))
    return rows


def _figure(module, rows: list[dict], runs: list[Run], workdir: pathlib.Path) -> str:
    """The experiment's main figure: test error against size (``PLOT = "scatter"``), or
    error curves, a panel per group of ``PANELS`` where the paper draws it so."""
    if getattr(module, "PLOT", "curves") == "scatter":
        plots.error_scatter(rows, workdir / "scatter.png", module.TITLE)
        return "scatter.png"
    curves = {run.arm: [] for run in runs}
    for run in runs:
        rows_of_run = _rows(run)  # Read once: a run's metrics.jsonl can be long.
        if rows_of_run and finished(run):
            curves[run.arm].append(rows_of_run)
    panels = getattr(module, "PANELS", None)
    if panels:  # The paper's own layout: a panel per group of arms.
        plots.error_panels({name: {arm: curves[arm] for arm in arms if arm in curves}
                            for name, arms in panels.items()}, workdir / "curves.png",
                           module.TITLE)
    else:
        plots.experiment_curves(curves, workdir / "curves.png", module.TITLE)
    return "curves.png"
