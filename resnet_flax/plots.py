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
