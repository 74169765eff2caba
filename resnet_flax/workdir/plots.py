"""PNG figures with matplotlib (imported here only: training never needs it)."""

from __future__ import annotations

import pathlib
import re

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # Files only, no display.
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix(counts: np.ndarray, names: list[str], path: pathlib.Path,
                     title: str = "") -> None:
    """Rows: true class, columns: predicted. Cells are shaded by the share of the true
    class (so a rare class's errors show) and, up to 20 classes, labelled with counts."""
    plt = _pyplot()
    k = len(names)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = min(4 + 0.55 * k, 30)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = np.arange(k)
    ax.set_xticks(ticks, names if k <= 50 else None, rotation=45, ha="right")
    ax.set_yticks(ticks, names if k <= 50 else None)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# curves.png's words (README and docs/training.md say the same).
LR_LABEL = "learning rate at the epoch's last step"
LR_NOTE = "the schedule moves within an epoch;\neach point is where it ended"
RESUMED_NOTE = "train: part of the epoch (resumed in it)"
LOSS_NOTE = ("train: averaged over the epoch as it trained,\nwith the config's augmentation, "
             "dropout and\nlabel smoothing; test: after the epoch")


def training_curves(rows: list[dict], path: pathlib.Path, title: str = "") -> None:
    """Loss and accuracy per epoch of one run (rows of metrics.jsonl), train and test side
    by side (the EMA's live weights dotted where there are any), and the learning rate
    each epoch trained with."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    ema = any("test_live_loss" in r for r in rows)  # "test" is then the EMA's.
    fig, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(13, 4.4))
    lines = (("train", "-", "train"), ("test", "--", "test (EMA)" if ema else "test"),
             ("test_live", ":", "test (live weights)"))
    for key, style, label in lines:
        loss = [r.get(f"{key}_loss") for r in rows]
        acc = [r.get(f"{key}_accuracy") for r in rows]
        if all(v is not None for v in loss):
            loss_ax.plot(epochs, loss, style, marker="o", ms=3, label=label)
            acc_ax.plot(epochs, [100 * a for a in acc], style, marker="o", ms=3, label=label)
    resumed = [r for r in rows if r.get("resumed_at_step")]
    if resumed:  # Their train figures cover the steps after the resume, not the epoch.
        for ax, key, scale in ((loss_ax, "train_loss", 1), (acc_ax, "train_accuracy", 100)):
            ax.plot([r["epoch"] for r in resumed], [scale * r[key] for r in resumed], "o",
                    ms=9, mfc="none", color="black", label=RESUMED_NOTE)
    lr_ax.plot(epochs, [r["learning_rate"] for r in rows], marker="o", ms=3)
    for ax, name in ((loss_ax, "loss"), (acc_ax, "accuracy (%)"), (lr_ax, LR_LABEL)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    loss_ax.set_title(LOSS_NOTE, fontsize=10.5)
    lr_ax.set_title(LR_NOTE, fontsize=10.5)
    loss_ax.legend(fontsize=9)
    acc_ax.legend(fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)  # Then renamed: a reader never sees half a file.
    plt.close(fig)
    tmp.replace(path)


def _error_per_epoch(seed_rows: list[list[dict]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, errors seeds x epochs) over the epochs every seed has reached."""
    n = min(len(rows) for rows in seed_rows)
    errors = np.array([[1 - r[key] for r in rows[:n]] for rows in seed_rows])
    return np.arange(1, n + 1), 100 * errors


def experiment_curves(runs: dict[str, list[list[dict]]], path: pathlib.Path,
                      title: str = "") -> None:
    """Train and test error per epoch, one line per arm (the mean over its seeds), the
    seeds' range as a band. ``runs``: arm -> one metrics.jsonl row list per seed.
    Plain (no-shortcut) arms are dashed, in the colour of their residual twin's depth."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharex=True)
    colours = {}
    for arm, seed_rows in runs.items():
        if not seed_rows:
            continue
        twin = re.sub(r"^(plain|resnet)_?", "", arm)  # plain20 and resnet20 share "20".
        colour = colours.setdefault(twin, f"C{len(colours) % 10}")
        style = "--" if arm.startswith("plain") else "-"
        for ax, key in zip(axes, ("train_accuracy", "test_accuracy")):
            epochs, errors = _error_per_epoch(seed_rows, key)
            ax.plot(epochs, errors.mean(0), style, color=colour, label=arm)
            if len(errors) > 1:
                ax.fill_between(epochs, errors.min(0), errors.max(0), color=colour, alpha=0.15)
    for ax, name in zip(axes, ("training error (%)", "test error (%)")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_title("train error: over each epoch's batches, as trained", fontsize=9)
    if runs and any(runs.values()):  # No finished run yet: an empty figure, no legend.
        axes[1].legend(fontsize=8, ncol=2)
    fig.suptitle(title + " (mean over seeds; band: min-max)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def error_scatter(rows: list[dict], path: pathlib.Path, title: str = "") -> None:
    """Final test error (mean, std bars) against parameters and against MACs, one
    labelled point per arm (rows of an experiment's results table)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for ax, key, name in ((axes[0], "params", "parameters"), (axes[1], "macs", "MACs per image")):
        for i, row in enumerate(r for r in rows if r["seeds"]):
            error = 100 * row["final_test_error_mean"]
            ax.errorbar(row[key], error, yerr=100 * row["final_test_error_std"], fmt="o",
                        color=f"C{i % 10}", capsize=3)
            ax.annotate(row["arm"], (row[key], error), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(name + " (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final test error (%)")
    fig.suptitle(title + " (mean +- std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def error_by_batch(series: dict[str, dict[int, dict]], path: pathlib.Path,
                   title: str = "") -> None:
    """Wu & He's fig. 1: final test error (mean, std bars) against the images a norm's
    statistics span, one line per norm. ``series``: norm -> images -> results row."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for i, (name, by_images) in enumerate(series.items()):
        points = sorted((n, row) for n, row in by_images.items() if row["seeds"])
        if not points:
            continue
        ax.errorbar([n for n, _ in points], [100 * r["final_test_error_mean"] for _, r in points],
                    yerr=[100 * r["final_test_error_std"] for _, r in points], marker="o",
                    capsize=3, color=f"C{i % 10}", label=name)
    ax.set_xscale("log", base=2)
    ax.invert_xaxis()  # As the paper: the batch shrinks to the right.
    ax.set_xlabel("images a BatchNorm's statistics span (log scale)")
    ax.set_ylabel("final test error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.suptitle(title + " (mean +- std over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def error_panels(panels: dict[str, dict[str, list[list[dict]]]], path: pathlib.Path,
                 title: str = "") -> None:
    """He et al.'s fig. 6 layout: a panel per group of arms (``panels``: panel title ->
    arm -> one metrics.jsonl row list per seed), training error bold and test error thin
    against iterations, an arm's two lines in one colour (the mean over its seeds)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), sharey=True,
                             squeeze=False)
    finals = []  # The last epoch's errors set the scale: early epochs are near chance.
    for ax, (name, runs) in zip(axes[0], panels.items()):
        for i, (arm, seed_rows) in enumerate(runs.items()):
            if not seed_rows:
                continue
            steps = [row["step"] for row in seed_rows[0][:min(map(len, seed_rows))]]
            for key, width, label in (("train_accuracy", 2.2, arm),
                                      ("test_accuracy", 0.9, None)):
                _, errors = _error_per_epoch(seed_rows, key)
                ax.plot(steps, errors.mean(0), color=f"C{i % 10}", linewidth=width,
                        label=label)
                finals.append(errors.mean(0)[-1])
        ax.set_title(name)
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        if any(runs.values()):
            ax.legend(fontsize=8, title="bold: training error, thin: test error",
                      title_fontsize=8)
    axes[0][0].set_ylabel("error (%)")
    if finals:
        axes[0][0].set_ylim(0, min(100.0, 2 * max(finals) + 5))
    fig.suptitle(title + " (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
