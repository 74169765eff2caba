"""``--mode eval``: a checkpoint's metrics on the test split, without training."""

import errno
import json

import numpy as np
import optax
import pytest
from conftest import TINY_TEST, tiny_overrides
from PIL import Image
from runs import assert_predictions_score_as_the_runs_evaluation, read_metrics, run_main

from resnet_flax.run import evaluate

NAMES = ["a", "b", "c", "d", "e", "f"]


def test_summary_follows_the_definitions():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 6)).astype(np.float32)
    labels = rng.integers(0, 6, 50)
    out = evaluate.summarize(logits, labels, NAMES)
    predicted = logits.argmax(-1)
    assert out["accuracy"] == pytest.approx(np.mean(predicted == labels))
    expected_loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    assert out["loss"] == pytest.approx(float(expected_loss), rel=1e-5)
    top5 = [label in np.argsort(-row)[:5] for row, label in zip(logits, labels)]
    assert out["top5_accuracy"] == pytest.approx(np.mean(top5))
    confusion = np.asarray(out["confusion"])
    for true, pred in ((0, 0), (2, 5), (4, 1)):
        assert confusion[true, pred] == np.sum((labels == true) & (predicted == pred))
    for i, name in enumerate(NAMES):
        assert out["per_class_accuracy"][name] == pytest.approx(
            np.mean(predicted[labels == i] == i))
    few = evaluate.summarize(logits[:, :5], np.minimum(labels, 4), NAMES[:5])
    assert "top5_accuracy" not in few  # Always 1 with 5 classes.


def test_console_lists_the_worst_classes_when_there_are_many(capsys):
    names = [f"c{i}" for i in range(12)]
    result = {"step": 3, "examples": 12, "split": "test", "loss": 1.0, "accuracy": 0.5,
              "per_class_accuracy": {n: i / 12 for i, n in enumerate(reversed(names))}}
    evaluate.console(result, "runs/x")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "eval step 3 (12 test images): loss=1.0000 accuracy=0.5000"
    assert lines[1].startswith("worst 10 of 12 classes: c11 0.000, c10 0.083, c9 0.167")
    assert "c1 " not in lines[1] and "c0 " not in lines[1]
    assert lines[2] == "wrote runs/x/eval/step_3.json and runs/x/eval/confusion_step_3.png"


def test_the_confusion_matrix_title_names_the_model_and_the_dataset(tiny_data_dir):
    from conftest import tiny_config

    config = tiny_config(tiny_data_dir)
    config.model_options.width_multiplier = 0.5
    result = {"model": evaluate.model_name(config), "dataset": config.dataset, "step": 2808,
              "split": "test", "accuracy": 0.92277}
    assert evaluate.confusion_title(result) == (
        "fashion_mnist_resnet (width 0.5) on fashion_mnist test split, step 2808: top-1 92.28%")
    config.model_options.width_multiplier = None
    assert evaluate.model_name(config) == "fashion_mnist_resnet"


def _tree(workdir):
    return {str(p.relative_to(workdir)): p.read_bytes()
            for p in (workdir / "checkpoints").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_eval_and_predict_reproduce_the_runs_test_figures_and_write_nothing_else(
        tiny_data_dir, tmp_path):
    # The EMA and flip TTA on: the run's "test" figures are the EMA's, mirrored.
    # best_metric: the epoch's step carries its metrics (one epoch: best is latest).
    overrides = tiny_overrides(tiny_data_dir, num_epochs=1, ema_decay=0.5, tta_flip=True,
                               best_metric="test_accuracy")
    assert run_main(tmp_path, *overrides).returncode == 0
    checkpoints = _tree(tmp_path)
    assert "checkpoints/8/metrics/metrics" in checkpoints
    assert "checkpoints/4/metrics/metrics" not in checkpoints  # Mid-epoch: none.

    # Without --config: with the workdir's config.json, EMA and flip TTA included.
    proc = run_main(tmp_path, "--mode=eval", "--checkpoint=best", block_tensorflow=True,
                    config=None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"eval step 8 ({TINY_TEST} test images): loss=")
    result = json.loads((tmp_path / "eval" / "step_8.json").read_text())
    last = read_metrics(tmp_path)[-1]
    assert result["accuracy"] == pytest.approx(last["test_accuracy"], abs=1e-6)
    assert result["loss"] == pytest.approx(last["test_loss"], rel=1e-4)
    assert result["examples"] == TINY_TEST == np.sum(result["confusion"])
    assert (result["model"], result["dataset"]) == ("fashion_mnist_resnet (width 0.25)",
                                                    "fashion_mnist")
    # The tiny set's test labels are i % 10: 3 of each of the first three classes, 2 of the rest.
    assert [sum(row) for row in result["confusion"]] == [3, 3, 3] + [2] * 7
    assert list(result["per_class_accuracy"])[:2] == ["T-shirt/top", "Trouser"]
    with Image.open(tmp_path / "eval" / "confusion_step_8.png") as png:
        assert png.format == "PNG" and min(png.size) > 400
    assert _tree(tmp_path) == checkpoints

    older = run_main(tmp_path, *overrides, "--mode=eval", "--checkpoint=4")  # --config too.
    assert older.returncode == 0, older.stderr[-3000:]
    assert json.loads((tmp_path / "eval" / "step_4.json").read_text())["step"] == 4
    assert _tree(tmp_path) == checkpoints

    assert_predictions_score_as_the_runs_evaluation(tmp_path, tiny_data_dir,
                                                    tmp_path / "predict")
    assert _tree(tmp_path) == checkpoints


@pytest.mark.slow
def test_eval_of_a_workdir_it_cannot_write_prints_its_figures(tiny_data_dir, tmp_path,
                                                              monkeypatch, capsys):
    from conftest import tiny_config

    from resnet_flax.run import train_loop

    config = tiny_config(tiny_data_dir, num_epochs=1)
    trained = train_loop.train_and_evaluate(config, str(tmp_path))

    def read_only(folder, result):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(evaluate, "_write", read_only)
    result = evaluate.evaluate_checkpoint(config, str(tmp_path))
    capsys.readouterr()
    evaluate.console(result, str(tmp_path))
    out, err = capsys.readouterr()
    assert f"accuracy={trained['test_accuracy']:.4f}" in out
    assert err == (f"warning: nothing written ({tmp_path / 'eval'}: Read-only file system); "
                   "the figures above are complete (--output DIR writes them to another "
                   "folder)\n")
