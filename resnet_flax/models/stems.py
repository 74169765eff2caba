"""Stems: what a network does to the image before its first stage.

A stem is a function ``stem(x, width, conv=..., norm=..., activation=..., norm_last=...)`` called
inside the network, so its layers are the network's own (``conv1``, ``bn1``: the names
torch weights map to). It declares their names with ``@makes(...)``: freezing and the
learning-rate groups find the stem's parameters by them, and the network refuses a
layer that no part declares. ``norm_last=False`` (pre-activation nets) leaves the last
conv's norm and activation to the first block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from resnet_flax.models import layers
from resnet_flax.models.parts import Factory, Option, part_class, part_settings


def makes(*layer_names: str) -> Callable[[Factory], Factory]:
    """Declares the layers a stem makes, by their names in the network."""
    def declare(stem: Factory) -> Factory:
        stem.layer_names = layer_names
        return stem
    return declare


def layer_names(stem: Factory) -> tuple[str, ...]:
    """The layer names ``stem`` declares (``@makes``); ``ValueError`` if it declares none."""
    names = getattr(part_class(stem), "layer_names", None)
    if names is None:
        raise ValueError(f"stem {getattr(part_class(stem), '__name__', stem)!r} does not "
                         "declare its layers: decorate it with @stems.makes('conv1', ...)")
    return names


def _finish(x, norm: Factory, activation: Callable, norm_last: bool):
    return activation(norm(name="bn1")(x)) if norm_last else x


@makes("conv1", "bn1")
def imagenet_stem(x: jnp.ndarray, width: int, *, conv: Factory, norm: Factory,
                  activation: Callable, norm_last: bool = True) -> jnp.ndarray:
    """He et al. 2015: a 7x7/2 conv, norm-activation, and a 3x3/2 max-pool."""
    x = _finish(conv(width, 7, 2, name="conv1")(x), norm, activation, norm_last)
    return layers.max_pool_3x3_s2(x)


class SpaceToDepthConv(nn.Module):
    """torch's 7x7/2 convolution (padding 3) computed as a 4x4/1 convolution of the image
    rearranged 2x2 pixels to channels (MLPerf's TPU stem): the same ``kernel`` parameter,
    its taps regrouped, so weights and checkpoints are shared with the plain stem. The
    sums run in another order: equal to float rounding. H and W must be even."""

    features: int
    conv_init: Callable[..., Any] = layers.TORCH_CONV_INIT
    conv_bias: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        n, h, w, c = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"the space-to-depth stem needs an even image size, not {h}x{w}")
        kernel = self.param("kernel", self.conv_init, (7, 7, c, self.features), jnp.float32)
        # Tap 2t + r - 1 of the 7x7 kernel is tap t of pixel phase r; tap -1 is zero.
        k = jnp.pad(kernel, ((1, 0), (1, 0), (0, 0), (0, 0))).reshape(4, 2, 4, 2, c, -1)
        k = k.transpose(0, 2, 1, 3, 4, 5).reshape(4, 4, 4 * c, self.features)
        s = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
        y = jax.lax.conv_general_dilated(
            s.reshape(n, h // 2, w // 2, 4 * c).astype(self.dtype), k.astype(self.dtype),
            (1, 1), ((2, 1), (2, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.conv_bias:
            y = y + self.param("bias", jax.nn.initializers.zeros, (self.features,), jnp.float32)
        return y.astype(self.dtype)


@makes("conv1", "bn1")
def imagenet_s2d_stem(x: jnp.ndarray, width: int, *, conv: Factory, norm: Factory,
                      activation: Callable, norm_last: bool = True) -> jnp.ndarray:
    """``imagenet_stem`` with its 7x7/2 convolution as ``SpaceToDepthConv``."""
    settings = {k: v for k, v in part_settings(conv).items()
                if k in ("conv_init", "conv_bias", "dtype")}
    x = _finish(SpaceToDepthConv(width, **settings, name="conv1")(x), norm, activation, norm_last)
    return layers.max_pool_3x3_s2(x)


@makes("conv1_0", "bn1_0", "conv1_1", "bn1_1", "conv1_2", "bn1")
def deep_stem(x: jnp.ndarray, width: int, *, conv: Factory, norm: Factory,
              activation: Callable, norm_last: bool = True) -> jnp.ndarray:
    """ResNet-C/D (He et al. 2019): three 3x3 convs of ``width``, ``width`` and
    ``2 * width`` channels, the first with stride 2, then the max-pool (timm's
    ``conv1 = Sequential(conv, bn, relu, conv, bn, relu, conv)``, then ``bn1``)."""
    x = activation(norm(name="bn1_0")(conv(width, 3, 2, name="conv1_0")(x)))
    x = activation(norm(name="bn1_1")(conv(width, 3, 1, name="conv1_1")(x)))
    x = _finish(conv(2 * width, 3, 1, name="conv1_2")(x), norm, activation, norm_last)
    return layers.max_pool_3x3_s2(x)


@makes("conv1", "bn1")
def cifar_stem(x: jnp.ndarray, width: int, *, conv: Factory, norm: Factory,
               activation: Callable, norm_last: bool = True) -> jnp.ndarray:
    """He et al. 2015 section 4.2: one 3x3 conv at full resolution."""
    return _finish(conv(width, 3, 1, name="conv1")(x), norm, activation, norm_last)


# config.model_options.stem -> the function.
STEMS: dict[str, Factory] = {"imagenet": imagenet_stem, "imagenet_s2d": imagenet_s2d_stem,
                             "deep": deep_stem, "cifar": cifar_stem}
OPTIONS = (
    Option("stem", str, "what the image meets first: `imagenet` a 7x7/2 conv and a max-pool, "
           "`imagenet_s2d` the same with its convolution as a 4x4/1 one on 2x2 pixels stacked "
           "to channels (MLPerf's TPU stem: the same weights, equal to float rounding), "
           "`cifar` one 3x3/1 conv, `deep` three 3x3 convs (ResNet-C)", STEMS),
)
