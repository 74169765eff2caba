"""``--mode eval --weights NAME``: pretrained ImageNet weights evaluated, without training,
on a built dataset with ImageNet's 1000 classes (``imagenet2012``'s validation split),
through the stream input with the weights' own centre crop."""

from __future__ import annotations

import json
import pathlib

import jax

from resnet_flax.config import ConfigError
from resnet_flax.data import datasets
from resnet_flax.run import evaluate
from resnet_flax.run.validate import validate


def pretrained_config(config, weights):
    """``config`` set to read its dataset as ``weights`` were evaluated: the stream input,
    the centre ``size`` x ``size`` of the shorter side at ``size / crop fraction``,
    ImageNet's normalisation, the weights' model."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.model, config.input, config.crop = weights.model, "stream", "inception"
        config.crop_size, config.eval_crop_fraction = weights.size, weights.crop_fraction
        config.eval_crop_size = 0  # The weights' own size, above.
        config.normalization, config.ema_decay, config.tta_flip = "imagenet", 0.0, False
    validate(config)
    return config


def evaluate_pretrained(config, name: str, workdir: str, output: str | None = None) -> dict:
    """Top-1, top-5 and loss of the weights ``name`` on ``config.dataset``'s test split;
    the result is written to ``<output or workdir/eval>/<name>.json`` and returned."""
    from resnet_flax import pretrained

    try:
        loaded = pretrained.load(name)
    except pretrained.PretrainedError as e:
        raise ConfigError(f"--weights {name}: {e}") from None
    config = pretrained_config(config, loaded.weights)
    spec = datasets.get(config.dataset, config.data_dir or None)
    if spec.num_classes != loaded.model.num_classes:
        raise ConfigError(f"--weights {name} has {loaded.model.num_classes} outputs; "
                          f"{config.dataset} has {spec.num_classes} classes (evaluate them on "
                          "--config.dataset=imagenet2012)")
    state = evaluate._template(config)
    variables = loaded.variables
    state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])
    logits, labels = evaluate.stream_logits(config, state)
    names = loaded.class_names or [str(i) for i in range(spec.num_classes)]
    result = {"model": loaded.weights.name, "dataset": config.dataset, "step": 0,
              "split": spec.test_split, "weights": name,
              **evaluate.summarize(logits, labels, names)}
    if loaded.weights.top1:
        result["published_top1"] = loaded.weights.top1
    if jax.process_index() == 0:
        result["written"] = _write(evaluate.results_folder(workdir, output), result)
    return result


def _write(folder: pathlib.Path, result: dict) -> str:
    """The JSON (a 1000-class confusion matrix is no readable figure: none is drawn)."""
    path = folder / f"{result['model'].replace('/', '_')}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
    except OSError as e:
        return f"nothing written ({path}: {e.strerror or e})"
    return f"wrote {path}"


def console(result: dict) -> None:
    published = (f" (published: {result['published_top1']:.2f}%)"
                 if "published_top1" in result else "")
    top5 = result.get("top5_accuracy", float("nan"))
    print(f"eval {result['model']} ({result['examples']} {result['dataset']} "
          f"{result['split']} images): loss={result['loss']:.4f} "
          f"accuracy={result['accuracy']:.4f}{published} top5_accuracy={top5:.4f}")
    print(result["written"])
