"""Pretrained ImageNet ResNets by name, in Flax::

    from resnet_flax import pretrained

    model, variables = pretrained.load("resnet50.tv2_in1k")   # torchvision's V2 weights
    loaded = pretrained.load("timm/resnet50.a1_in1k")         # a hub id works too
    loaded.class_names[:2]                                   # ('tench', 'goldfish')
    logits = model.apply(variables, pretrained.preprocess([photo], loaded.weights))

A name is timm's ``architecture.tag`` (``names()`` lists the ones with published
figures; any other timm tag of a registry model is tried on the hub), a hub id
``owner/repo`` holding a timm ``model.safetensors``, or a local ``.safetensors`` /
``.pth`` file with ``model=``. Files come through ``huggingface_hub`` (extra
``pretrained``), cached in its cache folder and checked by SHA-256.
"""

from __future__ import annotations

import json
import pathlib

from resnet_flax.pretrained.catalogue import CATALOGUE, TIMM_ARCHITECTURES, Weights, names
from resnet_flax.pretrained.hub import PretrainedError

__all__ = ["CATALOGUE", "FILE_SUFFIXES", "Pretrained", "PretrainedError", "Weights", "load",
           "names",
           "preprocess", "resolve"]

FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")  # Weights files, not names.


class Pretrained(tuple):
    """``(model, variables)``, with the ``weights`` they came from and the
    ``class_names`` of their outputs (ImageNet's for 1000 outputs, else ``None``)."""

    def __new__(cls, model, variables, weights: Weights, class_names):
        self = super().__new__(cls, (model, variables))
        self.weights, self.class_names = weights, class_names
        return self

    @property
    def model(self):
        return self[0]

    @property
    def variables(self):
        return self[1]


def resolve(name: str, model: str | None = None) -> tuple[Weights, pathlib.Path]:
    """(the ``Weights`` ``name`` stands for, its local file), fetched when needed."""
    from resnet_flax.pretrained.catalogue import from_hub_config
    from resnet_flax.pretrained.hub import CONFIG_FILE, fetch

    path = pathlib.Path(name).expanduser()
    if path.is_dir():
        return _local_folder(path)
    if path.suffix in FILE_SUFFIXES or path.is_file():
        if not path.is_file():
            raise PretrainedError(f"{name}: no such file")
        if not model:
            raise PretrainedError(f"{name}: a weights file needs the model it fits "
                                  "(model='resnet50', or --model)")
        return Weights(path.name, model), path
    if name in CATALOGUE:
        weights = CATALOGUE[name]
    elif "/" in name:
        weights = from_hub_config(name, json.loads(fetch(name, CONFIG_FILE).read_text()))
    elif _known_architecture(name):
        try:
            return resolve("timm/" + name)
        except PretrainedError as e:  # A mistyped tag, most likely.
            architecture = name.partition(".")[0]
            tags = [n.partition(".")[2] for n in names() if n.startswith(architecture + ".")]
            raise PretrainedError(f"{e} (the tags with published figures for "
                                  f"{architecture}: {', '.join(tags) or 'none'})") from None
    else:
        from resnet_flax.suggest import closest

        raise PretrainedError(
            f"unknown weights {name!r}{closest(name, names(), n=2) or ';'} `python -m "
            "resnet_flax.summary --pretrained` lists the known names; a hub id "
            "(timm/resnet50.a1h_in1k) or a .safetensors file works too")
    _check_model(weights)
    return weights, fetch(weights.hub_id)


def _local_folder(path: pathlib.Path) -> tuple[Weights, pathlib.Path]:
    """A folder in the hub's layout (an export's ``weights/``, or a downloaded repo)."""
    from resnet_flax.pretrained.catalogue import from_hub_config
    from resnet_flax.pretrained.hub import CONFIG_FILE, WEIGHTS_FILE

    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (path / f).is_file()]
    if missing:
        raise PretrainedError(f"{path}: a weights folder holds {CONFIG_FILE} and "
                              f"{WEIGHTS_FILE}; {' and '.join(missing)} missing")
    try:
        weights = from_hub_config(str(path), json.loads((path / CONFIG_FILE).read_text()))
    except (ValueError, AttributeError) as e:
        raise PretrainedError(f"{path / CONFIG_FILE}: not a weights config ({e})") from None
    _check_model(weights)
    return weights, path / WEIGHTS_FILE


def _known_architecture(name: str) -> bool:
    from resnet_flax import models

    architecture, dot, tag = name.partition(".")
    return bool(dot and tag) and TIMM_ARCHITECTURES.get(architecture, architecture) in \
        models.names()


def _check_model(weights: Weights) -> None:
    from resnet_flax import models

    try:
        models.spec(weights.model)  # Any registered name, a plain_ twin, any wrn_.
    except ValueError:
        raise PretrainedError(f"{weights.hub_id}: its architecture {weights.model!r} is not "
                              "one of this package's models (python -m resnet_flax.summary "
                              "--zoo)") from None


def load(name: str, *, model: str | None = None, **overrides) -> Pretrained:
    """``(model, variables)`` of the weights ``name``: the model built to match, the
    weights converted (``models.torch_weights.from_torch``), the class names attached.
    ``overrides`` go to the model (``dtype="bfloat16"``)."""
    from resnet_flax import models
    from resnet_flax.models import torch_weights
    from resnet_flax.pretrained.imagenet import class_names

    weights, path = resolve(name, model)
    overrides = {**dict(weights.options), **overrides}
    try:
        variables = torch_weights.from_torch(weights.model, path, **overrides)
    except (ValueError, OSError) as e:
        raise PretrainedError(f"{name}: not {weights.model} weights "
                              f"({str(e).splitlines()[0][:300]})") from None
    num_classes = variables["params"]["fc"]["kernel"].shape[-1]
    net = models.create(weights.model, num_classes=num_classes, **overrides)
    names_ = weights.class_names or (class_names() if num_classes == 1000 else None)
    return Pretrained(net, variables, weights, names_)


def preprocess(images, weights: Weights):
    """PIL images (or paths) -> the float32 NHWC batch the weights expect."""
    import numpy as np
    from PIL import Image

    from resnet_flax.pretrained.transform import eval_view, normalise

    views = []
    for image in images:
        if not isinstance(image, Image.Image):
            with Image.open(image) as opened:
                image = opened.convert("RGB")
        views.append(eval_view(image.convert("RGB"), weights))
    return normalise(np.stack(views), weights)
