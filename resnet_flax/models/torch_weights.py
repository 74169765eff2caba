"""Import torchvision / timm ResNet weights: ``from_torch(name, state_dict)``.

The Flax modules are named so every torch key maps mechanically:

  ``layer2_0/conv1/kernel``        <- ``layer2.0.conv1.weight`` (OIHW -> HWIO)
  ``layer2_0/downsample/conv``     <- ``layer2.0.downsample.0`` (timm's avg-down
                                      ResNet-D: ``downsample.1``; its BN ``.2``)
  ``conv1_0, bn1_0, conv1_1, ...`` <- timm's deep stem ``conv1.0, conv1.1, conv1.3, ...``
  ``*/bn*/scale, bias``            <- ``weight, bias``; batch_stats ``mean, var`` <-
                                      ``running_mean, running_var``
  ``fc/kernel``                    <- ``fc.weight`` transposed

so torchvision's resnet18..152, resnext*, wide_resnet* and timm's resnet50d and
seresnet50 state dicts load into ``models.create(name)``. Every key must be used
and every variable filled, with equal shapes; otherwise a ``ValueError`` names
the offending keys.

Files: ``.safetensors`` needs the optional ``safetensors`` package (extra
``pretrained``); ``.pth``/``.pt``/``.bin`` are read with torch's
``weights_only=True`` loader, never plain pickle.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from resnet_flax import models
from resnet_flax.models.parts import part_class
from resnet_flax.models.shortcuts import AvgDownShortcut

_DEEP_STEM = {"conv1_0": "conv1.0", "bn1_0": "conv1.1", "conv1_1": "conv1.3",
              "bn1_1": "conv1.4", "conv1_2": "conv1.6"}
_LEAVES = {("params", "kernel"): "weight", ("params", "bias"): "bias",
           ("params", "scale"): "weight", ("batch_stats", "mean"): "running_mean",
           ("batch_stats", "var"): "running_var"}
_IGNORED_SUFFIXES = ("num_batches_tracked",)
_WRAPPERS = ("state_dict", "model", "model_state")


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors in a ``.safetensors`` or torch (``.pth``/``.pt``/``.bin``) file.

    torch files are opened with ``torch.load(weights_only=True)`` (no arbitrary
    pickle); a checkpoint dict wrapping the weights under ``state_dict`` or
    ``model`` is unwrapped, and DataParallel's ``module.`` prefix is stripped.
    """
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError as err:
            raise ImportError("reading .safetensors needs the 'safetensors' package "
                              "(pip install 'resnet_flax[pretrained]')") from err
        return dict(load_file(path))
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"reading {path!r} needs torch; or convert it to .safetensors") from err
    with warnings.catch_warnings():  # Its advice on pickle protocols is no user's concern.
        warnings.simplefilter("ignore", UserWarning)
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in _WRAPPERS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    return {k.removeprefix("module."): _to_numpy(v) for k, v in state.items()}


def _to_numpy(value: Any) -> np.ndarray:
    """A numpy array from a numpy array or a torch tensor (without importing torch)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        # numpy has no bfloat16; every float ends up float32 anyway.
        return (value.float() if value.dtype.is_floating_point else value).numpy()
    return np.asarray(value)


def torch_key(path: tuple[str, ...], collection: str, avg_down: bool = False) -> str:
    """The torch state-dict key of the Flax variable ``collection/path``."""
    *modules, leaf = path
    parts = []
    for i, name in enumerate(modules):
        if name in _DEEP_STEM and i == 0:
            parts.append(_DEEP_STEM[name])
        elif name.startswith("layer") and "_" in name:
            parts.append(name.replace("_", ".", 1))
        elif i > 0 and modules[i - 1] == "downsample" and name in ("conv", "bn"):
            parts.append(str((name == "bn") + avg_down))
        else:
            parts.append(name)
    if (collection, leaf) not in _LEAVES:
        raise ValueError(f"no torch name for variable {collection}/{'/'.join(path)}")
    return ".".join([*parts, _LEAVES[collection, leaf]])


def to_flax_layout(array: np.ndarray, flax_shape: tuple[int, ...]) -> np.ndarray:
    """A torch tensor in the layout of the Flax variable of ``flax_shape``."""
    if array.ndim == 4:  # conv OIHW -> HWIO
        return array.transpose(2, 3, 1, 0)
    if array.ndim == 2 and len(flax_shape) == 2:  # linear (out, in) -> (in, out)
        return array.T
    return array


def to_torch_layout(array: np.ndarray) -> np.ndarray:
    """A Flax variable in torch's layout: ``to_flax_layout``'s inverse."""
    if array.ndim == 4:  # conv HWIO -> OIHW
        return array.transpose(3, 2, 0, 1)
    if array.ndim == 2:  # dense (in, out) -> (out, in)
        return array.T
    return array


def from_torch(name: str, state_dict: Mapping[str, Any] | str | os.PathLike,
               num_classes: int | None = None, **overrides) -> dict[str, Any]:
    """Flax variables ``{'params', 'batch_stats'}`` for ``models.create(name, ...)``
    from a torchvision/timm state dict (names -> numpy arrays or torch tensors)
    or a path to one (see ``load_state_dict``).

    ``num_classes`` defaults to the rows of ``fc.weight``; ``overrides`` go to
    ``models.create`` (e.g. ``dtype``; only fields that keep the layout).
    """
    if isinstance(state_dict, (str, os.PathLike)):
        state_dict = load_state_dict(state_dict)
    tensors = {k: v for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIXES)}
    if num_classes is None and "fc.weight" in tensors:
        num_classes = int(np.shape(tensors["fc.weight"])[0])
    model = models.create(name, num_classes=num_classes, **overrides)
    h, w, c = models.spec(name).input_shape
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, h, w, c)), train=False))
    avg_down = part_class(model.shortcut) is AvgDownShortcut

    variables: dict[tuple[str, ...], Any] = {}
    missing, mismatched, used = [], [], set()
    for path, shape in traverse_util.flatten_dict(dict(shapes)).items():
        collection, *rest = path
        key = torch_key(tuple(rest), collection, avg_down)
        if key not in tensors:
            missing.append(f"{key} (for {'/'.join(path)}, shape {shape.shape})")
            continue
        used.add(key)
        array = to_flax_layout(_to_numpy(tensors[key]), shape.shape)
        if array.shape != shape.shape:
            mismatched.append(f"{key}: torch {tuple(np.shape(tensors[key]))} -> "
                              f"{array.shape}, {'/'.join(path)} needs {shape.shape}")
            continue
        variables[path] = jnp.asarray(array, jnp.float32)
    unexpected = sorted(set(tensors) - used)
    problems = []
    if missing:
        problems.append("missing keys: " + "; ".join(missing))
    if mismatched:
        problems.append("shape mismatch: " + "; ".join(mismatched))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if problems:
        raise ValueError(f"state_dict does not fit {name!r}: " + " | ".join(problems))
    return traverse_util.unflatten_dict(variables)
