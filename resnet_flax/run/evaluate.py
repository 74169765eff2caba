"""``evaluate_checkpoint``: a trained run's metrics on its test split, without training.

    python -m resnet_flax.main --workdir runs/fm_cpu --mode eval [--checkpoint latest|best|STEP]

evaluates with the workdir's ``config.json``; given ``--config`` (and overrides), with
that config, whose model and dataset must be the run's.

Restores one checkpoint read-only (nothing in the workdir's ``checkpoints/`` is
moved or written), computes every test image's logits once, with the EMA and flip
TTA exactly as the run's own evaluation does, and reports the loss, top-1, top-5
(with more than 5 classes), each class's accuracy and the confusion matrix. Writes
``<workdir>/eval/step_<N>.json`` and ``<workdir>/eval/confusion_step_<N>.png``.
"""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import ml_collections
import numpy as np

from resnet_flax.config import ConfigError, ranking_metric
from resnet_flax.data import datasets, folder_changes, pipeline, sources, tfds_source
from resnet_flax.run.assemble import build
from resnet_flax.run.validate import validate
from resnet_flax.train import parallel, steps
from resnet_flax.train import state as state_lib
from resnet_flax.workdir import checkpoint, resume_guard


def _check_config(config, workdir: pathlib.Path) -> None:
    """Refuses a config whose model, model options or dataset differ from the run's: its
    numbers would be another model's or other data's. The rest (eval batch size, TTA,
    where the data lives) may differ."""
    saved = resume_guard.saved(workdir)
    if saved is None:
        return
    changed = resume_guard.differences(saved, resume_guard.as_dict(config))
    wrong = {k: v for k, v in changed.items()
             if k in ("model", "dataset") or k.startswith("model_options.")}
    if wrong:
        listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in wrong.items())
        raise ConfigError(f"{workdir} was trained with another config ({listed}); evaluate "
                          "it with the config it was trained with")


def restore(config, workdir: pathlib.Path, which: str = "latest") -> state_lib.TrainState:
    """The workdir's checkpoint ``which`` (``latest``, ``best`` or a step number), read-only."""
    if not (workdir / "checkpoints").is_dir():
        raise checkpoint.CheckpointError(
            f"{workdir} has no checkpoints/: train it first (the same command without "
            "--mode eval)")
    ckpt = checkpoint.Checkpointer(str(workdir), read_only=True,
                                   best_metric=ranking_metric(config))
    try:
        step = _chosen_step(ckpt, which)
        return ckpt.restore_step(_template(config), step)
    finally:
        ckpt.close()


def _chosen_step(ckpt: checkpoint.Checkpointer, which: str) -> int:
    """The step ``which`` names; ``CheckpointError`` (before any model is built) if none."""
    if which == "best":
        step = ckpt.best_step()
        if step is None:
            raise checkpoint.CheckpointError(
                f"{ckpt.directory} has no epoch metrics to choose a best step by: train with "
                "--config.best_metric=test_accuracy (or test_loss) to keep the best epoch")
    else:
        step = ckpt.latest_step() if which == "latest" else int(which)
    if step is None:
        raise checkpoint.CheckpointError(f"{ckpt.directory} holds no checkpoint")
    ckpt.require_step(step)
    return step


def _template(config) -> state_lib.TrainState:
    """A state of the run's structure to restore into, initialised as training does (with
    the compilation cache on, a program compiled before is loaded, not compiled again)."""
    spec = datasets.get(config.dataset, config.data_dir or None)
    return build(config, spec.num_classes, sources.image_shape(config)).state


def logits_of(config, state, images: np.ndarray) -> np.ndarray:
    """Every image's logits, in order, as the run's evaluation computes them."""
    mesh, state = _on_mesh(config, state)
    predict = steps.forward(steps.step_config(config), config.ema_decay > 0, mesh)
    indices, _ = pipeline.eval_batches(len(images), config.eval_batch_size)
    out = [np.asarray(predict(state, parallel.put(images[idx], parallel.batch_sharded(mesh))))
           for idx in indices]
    return np.concatenate(out)[: len(images)].astype(np.float32)


def _on_mesh(config, state):
    """The data mesh (checked against the eval batch) and ``state`` replicated on it."""
    mesh = parallel.make_mesh()
    parallel.check_divisible(config.eval_batch_size, mesh, "eval_batch_size")
    return mesh, parallel.put(state, parallel.replicated(mesh))


def stream_logits(config, state) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) of every test image, read as the run's stream input reads them
    (centre crops of images of any size; each process its rows of every batch)."""
    mesh, state = _on_mesh(config, state)
    source = sources.Stream(config)
    source.place(parallel.JitMode(mesh), config)
    predict = steps.forward(steps.step_config(config), config.ema_decay > 0, mesh)
    # Labels and mask replicated too: each process reads every row back.
    everywhere = jax.jit(lambda *rows: rows, out_shardings=parallel.replicated(mesh))
    batches = [jax.device_get((predict(state, x), *everywhere(y, m)))
               for x, y, m in source.eval_batches()]
    logits, labels, mask = (np.concatenate(parts) for parts in zip(*batches))
    return logits[mask > 0].astype(np.float32), labels[mask > 0]


def summarize(logits: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Loss, top-1, top-5 (more than 5 classes), per-class accuracy, confusion matrix
    (rows: true class, columns: predicted)."""
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    predicted = logits.argmax(-1)
    k = len(names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    out = {"examples": int(len(labels)),
           "loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
           "accuracy": float((predicted == labels).mean())}
    if k > 5:
        top5 = np.argsort(-logits, axis=-1)[:, :5]
        out["top5_accuracy"] = float((top5 == labels[:, None]).any(-1).mean())
    out["per_class_accuracy"] = {name: float(a) for name, a in zip(names, per_class)}
    out["confusion"] = confusion.tolist()
    out["class_names"] = list(names)
    return out


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        which: str = "latest", output: str | None = None) -> dict:
    """Evaluates checkpoint ``which`` of ``workdir`` on the test split; writes the metrics
    to ``output`` (default ``<workdir>/eval``) and returns them (see the module
    docstring)."""
    validate(config)
    workdir = pathlib.Path(workdir)
    _check_config(config, workdir)
    folder_changes.report(config, jax.process_index() == 0)
    state = restore(config, workdir, which)
    spec = datasets.get(config.dataset, config.data_dir or None)
    load = dict(data_dir=config.data_dir or None, allow_download=config.allow_download)
    if config.input == "stream":
        logits, labels = stream_logits(config, state)
    else:
        images, labels = tfds_source.load_split(config.dataset, spec.test_split, **load)
        logits = logits_of(config, state, images)
    names = tfds_source.class_names(config.dataset, **load)
    result = {"model": model_name(config), "dataset": config.dataset, "step": int(state.step),
              "split": spec.test_split, **summarize(logits, labels, names)}
    folder = results_folder(workdir, output)
    if jax.process_index() == 0:
        try:
            _write(folder, result)
        except OSError as e:  # A read-only workdir, a full disk: the figures still count.
            result["not_written"] = f"{folder}: {e.strerror or e}"
    return result


def results_folder(workdir, output: str | None = None) -> pathlib.Path:
    """Where an evaluation's results go: ``output``, else ``<workdir>/eval``."""
    return pathlib.Path(output).expanduser() if output else pathlib.Path(workdir) / "eval"


def model_name(config) -> str:
    """The model as a title names it: ``fashion_mnist_resnet (width 0.5)``."""
    width = config.model_options.width_multiplier
    return config.model + (f" (width {width:g})" if width not in (None, 1) else "")


def confusion_title(result: dict) -> str:
    """``fashion_mnist_resnet (width 0.5) on fashion_mnist test split, step 2808: top-1
    92.28%``."""
    return (f"{result['model']} on {result['dataset']} {result['split']} split, step "
            f"{result['step']}: top-1 {100 * result['accuracy']:.2f}%")


def _write(folder: pathlib.Path, result: dict) -> None:
    from resnet_flax.workdir import plots

    folder.mkdir(parents=True, exist_ok=True)
    step = result["step"]
    (folder / f"step_{step}.json").write_text(json.dumps(result, indent=1) + "\n")
    plots.confusion_matrix(np.asarray(result["confusion"]), result["class_names"],
                           folder / f"confusion_step_{step}.png", title=confusion_title(result))


_LISTED_CLASSES = 10  # Per-class accuracies printed; every class's is in the JSON.


def console(result: dict, workdir: str, output: str | None = None) -> None:
    """What a user reads: the headline figures, each class's accuracy, where the files are."""
    top5 = (f" top5_accuracy={result['top5_accuracy']:.4f}" if "top5_accuracy" in result
            else "")
    print(f"eval step {result['step']} ({result['examples']} {result['split']} images): "
          f"loss={result['loss']:.4f} accuracy={result['accuracy']:.4f}{top5}")
    per_class = result["per_class_accuracy"].items()
    if len(per_class) <= _LISTED_CLASSES:
        print("per class: " + ", ".join(f"{name} {acc:.3f}" for name, acc in per_class))
    else:  # A hundred classes make an unreadable line: the worst ones, the rest in the JSON.
        worst = sorted(per_class, key=lambda item: item[1])[:_LISTED_CLASSES]
        print(f"worst {_LISTED_CLASSES} of {len(per_class)} classes: "
              + ", ".join(f"{name} {acc:.3f}" for name, acc in worst))
    folder, step = results_folder(workdir, output), result["step"]
    if "not_written" in result:
        print(f"warning: nothing written ({result['not_written']}); the figures above are "
              "complete (--output DIR writes them to another folder)", file=sys.stderr)
        return
    print(f"wrote {folder / f'step_{step}.json'} and {folder / f'confusion_step_{step}.png'}")
