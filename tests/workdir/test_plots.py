"""curves.png says what each panel shows, in the words README and docs/training.md use."""

import pytest
from conftest import REPO

from resnet_flax.workdir import plots

ROWS = [{"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.3 * e, "test_loss": 2.1 / e,
         "test_accuracy": 0.3 * e, "test_live_loss": 2.2 / e, "test_live_accuracy": 0.29 * e,
         "learning_rate": 0.1 / e} for e in (1, 2, 3)]


@pytest.fixture
def drawn(monkeypatch):
    """The figures ``plots`` draws, kept open instead of closed."""
    plt = plots._pyplot()
    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    yield figures
    for fig in figures:
        close(fig)


def test_curves_label_the_learning_rate_and_the_train_figures(tmp_path, drawn):
    plots.training_curves(ROWS, tmp_path / "curves.png", title="run")
    loss_ax, acc_ax, lr_ax = drawn[0].axes
    assert lr_ax.get_ylabel() == plots.LR_LABEL == "learning rate at the epoch's last step"
    assert lr_ax.get_title() == plots.LR_NOTE and lr_ax.title.get_fontsize() >= 10
    assert loss_ax.get_title() == plots.LOSS_NOTE and "optimised" not in plots.LOSS_NOTE
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == [
        "train", "test (EMA)", "test (live weights)"]
    assert all(float(tick).is_integer() for tick in lr_ax.get_xticks())  # Whole epochs.
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_readme_and_the_training_docs_use_the_plots_words():
    readme = (REPO / "README.md").read_text()
    training = " ".join((REPO / "docs" / "training.md").read_text().split())
    assert f"the {plots.LR_LABEL} |" in readme  # The workdir table's curves.png row.
    assert f"the {plots.LR_LABEL}:" in training and f"the {plots.LR_LABEL})" in training
    assert " ".join(plots.LR_NOTE.split()) in training
    assert " ".join(plots.LOSS_NOTE.split()[1:6]) in training  # "averaged over the epoch..."


def test_an_epoch_resumed_part_way_is_marked_as_part_of_the_epoch(tmp_path, drawn):
    rows = [dict(r) for r in ROWS]
    rows[-1]["resumed_at_step"] = 3
    plots.training_curves(rows, tmp_path / "curves.png")
    loss_ax, acc_ax, _ = drawn[0].axes
    for ax in (loss_ax, acc_ax):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert plots.RESUMED_NOTE in labels
        ring = next(line for line in ax.get_lines() if line.get_label() == plots.RESUMED_NOTE)
        assert list(ring.get_xdata()) == [rows[-1]["epoch"]]
