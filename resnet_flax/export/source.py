"""What an export reads: a trained run's checkpoint, or pretrained weights by name, as one
inference function (uint8 NHWC images in, float32 logits out: the preprocessing inside)
and what a user of the exported files needs to know about it."""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from resnet_flax.data import augment, crops
from resnet_flax.models.parts import part_class
from resnet_flax.models.shortcuts import AvgDownShortcut


class ExportError(Exception):
    """A source or an output that cannot be exported; its message is one line."""


@dataclasses.dataclass(frozen=True)
class Exportable:
    """A model ready to leave the project, and its description."""

    model_name: str  # The registry's name.
    model_options: dict  # config.model_options the model was built with.
    model: Any  # The linen module.
    variables: dict  # {"params", "batch_stats"} as numpy arrays.
    logits: Callable  # (variables, uint8 NHWC images) -> float32 logits, traceable.
    input_shape: tuple[int, int, int]  # (H, W, C) of the images ``logits`` takes.
    mean: tuple[float, ...]  # The normalisation inside ``logits``, per channel, on [0, 1].
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    source: str  # Where it came from, in words.
    view: dict | None = None  # How an image of any size becomes input_shape (centre crop).
    config: dict | None = None  # A run's config.
    metrics: dict | None = None  # A run's last evaluation.

    @property
    def avg_down(self) -> bool:
        """Whether torch names its projections as ResNet-D's (``downsample.1``)."""
        return part_class(self.model.shortcut) is AvgDownShortcut


def _last_evaluation(workdir: pathlib.Path) -> dict | None:
    from resnet_flax.workdir import metrics

    path = workdir / "metrics.jsonl"
    rows = [r for r in metrics.read_rows(path) if "test_accuracy" in r] if path.exists() else []
    return rows[-1] if rows else None


def _class_names(config, num_classes: int) -> tuple[str, ...]:
    from resnet_flax.data import tfds_source

    try:
        return tuple(tfds_source.class_names(config.dataset, config.data_dir or None,
                                             allow_download=False))
    except Exception:  # noqa: BLE001 - the data may be elsewhere: indices name the classes.
        return tuple(str(i) for i in range(num_classes))


def from_workdir(workdir: str, which: str = "latest") -> Exportable:
    """The model a run's evaluation computes (EMA and flip TTA as the run had them) at its
    checkpoint ``which`` (``latest``, ``best`` or a step)."""
    from resnet_flax import models
    from resnet_flax.config import ConfigError, model_overrides
    from resnet_flax.data import sources
    from resnet_flax.run import evaluate
    from resnet_flax.train import steps
    from resnet_flax.workdir import resume_guard
    from resnet_flax.workdir.checkpoint import CheckpointError

    folder = pathlib.Path(workdir).expanduser()
    try:
        config = resume_guard.load(folder)
        state = evaluate.restore(config, folder, which)
        input_shape = sources.image_shape(config)
    except (ConfigError, CheckpointError) as e:
        raise ExportError(str(e)) from None
    cfg = steps.step_config(config)
    variables = jax.device_get(state.variables(config.ema_decay > 0))
    num_classes = variables["params"]["fc"]["kernel"].shape[-1]
    model = models.from_config(config, num_classes)
    view = None
    if config.crop != "none":
        size = sources.eval_crop_size(config)
        view = {"resize_shorter": crops.eval_resize(size, config.eval_crop_fraction),
                "centre_crop": size, "interpolation": "bilinear"}
    return Exportable(
        config.model, model_overrides(config), model, variables,
        functools.partial(_run_logits, state.apply_fn, cfg=cfg), tuple(input_shape),
        tuple(cfg.mean), tuple(cfg.std), _class_names(config, num_classes),
        f"{folder} checkpoint step {int(state.step)} ({which})", view,
        config.to_dict(), _last_evaluation(folder))


def _run_logits(apply_fn, variables, images, cfg):
    from resnet_flax.train import steps

    return steps.inference(apply_fn, variables, images, cfg).astype(jnp.float32)


def normalised_logits(apply_fn, variables, images, mean, std):
    return apply_fn(variables, augment.normalize(images, mean, std),
                    train=False).astype(jnp.float32)


def from_weights(name: str, model: str | None = None) -> Exportable:
    """Pretrained weights by name (or a file, with ``model``), as ``pretrained.load``
    finds them, behind their own normalisation."""
    from resnet_flax import pretrained

    try:
        loaded = pretrained.load(name, model=model)
    except pretrained.PretrainedError as e:
        raise ExportError(str(e)) from None
    net, variables = loaded
    weights = loaded.weights
    channels = len(weights.mean)
    num_classes = net.num_classes
    names = loaded.class_names or tuple(str(i) for i in range(num_classes))
    view = {"resize_shorter": weights.resize_to, "centre_crop": weights.size,
            "interpolation": weights.interpolation}
    return Exportable(
        weights.model, dict(weights.options), net, jax.device_get(variables),
        functools.partial(normalised_logits, net.apply, mean=weights.mean, std=weights.std),
        (weights.size, weights.size, channels), tuple(weights.mean), tuple(weights.std),
        tuple(names), f"pretrained weights {name}", view)


def example_images(exportable: Exportable, count: int = 2, seed: int = 0) -> np.ndarray:
    """Random uint8 images of the exported input's shape (for checks)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *exportable.input_shape), dtype=np.uint8)
