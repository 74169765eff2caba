"""Stems: what a network does to the image before its first stage.

A stem is a function ``stem(x, width, conv=..., norm=..., act=..., norm_last=...)`` called
inside the network, so its layers are the network's own (``conv1``, ``bn1``: the names
torch weights map to). ``norm_last=False`` (pre-activation nets) leaves the last conv's
norm and activation to the first block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from resnet_flax.models import layers

Factory = Callable[..., Any]


def _finish(x, norm: Factory, act: Callable, norm_last: bool):
    return act(norm(name="bn1")(x)) if norm_last else x


def imagenet_stem(x: jnp.ndarray, width: int, *, conv: Factory, norm: Factory,
                  act: Callable, norm_last: bool = True) -> jnp.ndarray:
    """He et al. 2015: a 7x7/2 conv, norm-activation, and a 3x3/2 max-pool."""
    x = _finish(conv(width, 7, 2, name="conv1")(x), norm, act, norm_last)
    return layers.max_pool_3x3_s2(x)


def deep_stem(x: jnp.ndarray, width: int, *, conv: Factory, norm: Factory,
              act: Callable, norm_last: bool = True) -> jnp.ndarray:
    """ResNet-C/D (He et al. 2019): three 3x3 convs of ``width``, ``width`` and
    ``2 * width`` channels, the first with stride 2, then the max-pool (timm's
    ``conv1 = Sequential(conv, bn, relu, conv, bn, relu, conv)``, then ``bn1``)."""
    x = act(norm(name="bn1_0")(conv(width, 3, 2, name="conv1_0")(x)))
    x = act(norm(name="bn1_1")(conv(width, 3, 1, name="conv1_1")(x)))
    x = _finish(conv(2 * width, 3, 1, name="conv1_2")(x), norm, act, norm_last)
    return layers.max_pool_3x3_s2(x)


def cifar_stem(x: jnp.ndarray, width: int, *, conv: Factory, norm: Factory,
               act: Callable, norm_last: bool = True) -> jnp.ndarray:
    """He et al. 2015 section 4.2: one 3x3 conv at full resolution."""
    return _finish(conv(width, 3, 1, name="conv1")(x), norm, act, norm_last)


# config.model_options.stem -> the function.
STEMS: dict[str, Factory] = {"imagenet": imagenet_stem, "deep": deep_stem, "cifar": cifar_stem}
