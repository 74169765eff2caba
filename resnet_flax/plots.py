"""PNG figures with matplotlib (imported here only: training never needs it)."""

from __future__ import annotations

import pathlib

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


def training_curves(rows: list[dict], path: pathlib.Path, title: str = "") -> None:
    """Loss, accuracy and learning rate per epoch of one run (rows of metrics.jsonl):
    train and test side by side, the EMA's live weights dotted where there are any."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, style, label in (("train", "-", "train"), ("test", "--", "test"),
                              ("test_live", ":", "test (live weights)")):
        loss = [r.get(f"{key}_loss") for r in rows]
        acc = [r.get(f"{key}_accuracy") for r in rows]
        if all(v is not None for v in loss):
            loss_ax.plot(epochs, loss, style, marker="o", ms=3, label=label)
            acc_ax.plot(epochs, [100 * a for a in acc], style, marker="o", ms=3, label=label)
    lr_ax.plot(epochs, [r["learning_rate"] for r in rows], marker="o", ms=3)
    for ax, name in ((loss_ax, "loss"), (acc_ax, "accuracy (%)"),
                     (lr_ax, "learning rate (last step of the epoch)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    loss_ax.set_title("train: as optimised (augmented, dropout, smoothing)", fontsize=9)
    loss_ax.legend()
    acc_ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)  # Then renamed: a reader never sees half a file.
    plt.close(fig)
    tmp.replace(path)
