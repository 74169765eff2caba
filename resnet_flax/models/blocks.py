"""Residual blocks (He et al. 2015, 2016) and their shortcuts.

Shortcut options from the paper, section 4.1:
  "A": identity; where the shape changes, subsample by the stride and zero-pad
       the new channels (parameter-free; the CIFAR networks use it).
  "B": identity; a 1x1 projection conv + BN only where the shape changes
       (torchvision's choice for ImageNet).
  "C": a projection on every block.
  "D": like "B", but a stride-2 projection is a 2x2 average pool followed by a
       stride-1 1x1 conv + BN (ResNet-D, He et al. 2019 "Bag of Tricks"; timm's
       ``avg_down``), so the projection sees every pixel.
``plain=True`` drops the shortcut altogether: the no-shortcut twin of the
degradation experiment (paper fig. 1/4).

``preact=True`` gives the pre-activation ordering (He et al. 2016, "Identity
Mappings"): BN-ReLU-conv inside the branch, nothing after the addition, and
projections without BN. Where the shortcut transforms its input (a projection
or option A's reshaping) it takes the pre-activated input, as in the authors'
code and the official Wide ResNet; otherwise the raw input.

Every block also takes squeeze-excitation (``se_reduction``), stochastic depth
(``drop_path``), dropout between its convs (``dropout_rate``, Wide ResNet), its
nonlinearity (``act``; the SE gate's hidden ReLU stays, as in Hu et al.) and
biases on its convs (``conv_bias``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax.nn import initializers

from resnet_flax.models import cross_device, layers

SHORTCUTS = ("A", "B", "C", "D")


def shortcut_transforms(option: str, in_features: int, features: int, strides: int) -> bool:
    """Whether shortcut ``option`` changes its input (False: plain identity)."""
    return option == "C" or strides != 1 or in_features != features


def se_width(channels: int, reduction: int, divisor: int = 8) -> int:
    """Hidden width of an SE module: ``channels / reduction`` rounded to a multiple
    of ``divisor`` (at least ``divisor``), timm's ``make_divisible``; for every
    SE-ResNet-50 layer it equals Hu et al.'s ``channels // 16``."""
    v = channels / reduction
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class Shortcut(nn.Module):
    """The identity path of a block, reshaped to ``features`` x ``strides``.

    ``with_norm=False`` leaves the BN off projections (pre-activation nets).
    """

    features: int
    strides: int
    option: str
    norm: Callable[..., nn.Module]
    conv_init: Callable[..., Any]
    dtype: Any = jnp.float32
    with_norm: bool = True
    conv_bias: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.option not in SHORTCUTS:
            raise ValueError(f"shortcut={self.option!r} is not one of {SHORTCUTS}")
        in_features = x.shape[-1]
        reshape = self.strides != 1 or in_features != self.features
        if self.option == "C" or (self.option in "BD" and reshape):
            strides = self.strides
            if self.option == "D" and self.strides != 1:
                if self.strides != 2:
                    raise ValueError("shortcut 'D' supports strides 1 and 2 only")
                x, strides = layers.avg_pool_2x2_ceil(x), 1
            x = layers.conv(self.features, 1, strides, dtype=self.dtype, use_bias=self.conv_bias,
                            kernel_init=self.conv_init, name="conv")(x)
            return self.norm(name="bn")(x) if self.with_norm else x
        if not reshape:
            return x
        if self.features < in_features:
            raise ValueError(
                f"shortcut 'A' cannot shrink {in_features} to {self.features} channels; use 'B'")
        x = x[:, :: self.strides, :: self.strides, :]
        extra = self.features - in_features
        return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): channel gates from pooled features.

    ``fc1``/``fc2`` are 1x1 convs with bias, as in timm, so torch weights map 1:1.
    """

    reduction: int = 16
    conv_init: Callable[..., Any] = layers.TORCH_CONV_INIT
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        channels = x.shape[-1]
        conv = lambda f, name: nn.Conv(  # noqa: E731
            f, (1, 1), use_bias=True, dtype=self.dtype, param_dtype=jnp.float32,
            kernel_init=self.conv_init, name=name)
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = nn.relu(conv(se_width(channels, self.reduction), "fc1")(s))
        s = nn.sigmoid(conv(channels, "fc2")(s))
        return x * s


class ResidualBlock(nn.Module):
    """Fields and the residual merge shared by ``BasicBlock`` and ``Bottleneck``."""

    features: int
    strides: int
    norm: Callable[..., nn.Module]
    conv_init: Callable[..., Any]
    shortcut: str = "B"
    plain: bool = False
    zero_init_residual: bool = False
    preact: bool = False
    se_reduction: int = 0
    drop_path: float = 0.0
    dropout_rate: float = 0.0
    deterministic: bool = True
    dtype: Any = jnp.float32
    act: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu
    conv_bias: bool = False
    groups: int = 1  # Of the 3x3 conv (Bottleneck; ResNeXt).
    base_width: int = 64  # Bottleneck width per group at 64 planes (Bottleneck; wide nets).
    axis_name: str | None = None  # The pmap axis dropout draws across (cross_device).

    expansion = 1

    def _conv(self, features, kernel, strides, name, groups=1, zero=False):
        init = initializers.zeros if zero else self.conv_init
        return layers.conv(features, kernel, strides, groups=groups, use_bias=self.conv_bias,
                           dtype=self.dtype, kernel_init=init, name=name)

    def _preactivate(self, x, out_features):
        """(branch input, shortcut input) of a pre-activation block."""
        a = self.act(self.norm(name="bn1")(x))
        transforms = shortcut_transforms(self.shortcut, x.shape[-1], out_features, self.strides)
        return a, (a if transforms else x)

    def _dropout(self, y):
        return cross_device.Dropout(self.dropout_rate, deterministic=self.deterministic,
                                    axis_name=self.axis_name)(y)

    def _merge(self, y, shortcut_in, out_features):
        """SE, stochastic depth, shortcut addition and (post-activation) ReLU."""
        if self.se_reduction:
            y = SqueezeExcite(self.se_reduction, self.conv_init, self.dtype, name="se")(y)
        if not self.plain:
            y = layers.DropPath(self.drop_path, self.deterministic, self.axis_name,
                                name="drop_path")(y)
            y = y + Shortcut(out_features, self.strides, self.shortcut, self.norm,
                             self.conv_init, self.dtype, with_norm=not self.preact,
                             conv_bias=self.conv_bias, name="downsample")(shortcut_in)
        return y if self.preact else self.act(y)


class BasicBlock(ResidualBlock):
    """Two 3x3 convs (torchvision ``BasicBlock``); output has ``features`` channels.

    Zero-init of the residual: the last BN scale (post-activation), or the last
    conv's kernel (pre-activation, where the branch ends in a conv; a zero BN
    scale there would feed ReLU exact zeros and never receive a gradient).
    """

    expansion = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.groups != 1 or self.base_width != 64:  # torchvision refuses them too.
            raise ValueError("BasicBlock only supports groups=1 and base_width=64 "
                             f"(got {self.groups}, {self.base_width}); use a Bottleneck model")
        zero = self.zero_init_residual
        if self.preact:
            y, sc = self._preactivate(x, self.features)
            y = self._conv(self.features, 3, self.strides, "conv1")(y)
            y = self._dropout(self.act(self.norm(name="bn2")(y)))
            y = self._conv(self.features, 3, 1, "conv2", zero=zero)(y)
            return self._merge(y, sc, self.features)
        y = self._conv(self.features, 3, self.strides, "conv1")(x)
        y = self._dropout(self.act(self.norm(name="bn1")(y)))
        y = self._conv(self.features, 3, 1, "conv2")(y)
        y = self.norm(name="bn2", zero_scale=zero)(y)
        return self._merge(y, x, self.features)


class Bottleneck(ResidualBlock):
    """1x1 - 3x3 - 1x1 block with the stride on the 3x3 (torchvision's "v1.5").

    ``features`` is the bottleneck width before expansion ("planes" in torch);
    ``groups`` and ``base_width`` give ResNeXt and wide variants as in torchvision:
    the 3x3 has ``int(features * base_width / 64) * groups`` channels.
    """

    expansion = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        width = int(self.features * (self.base_width / 64.0)) * self.groups
        out_features = self.features * self.expansion
        zero = self.zero_init_residual
        if self.preact:
            y, sc = self._preactivate(x, out_features)
            y = self._conv(width, 1, 1, "conv1")(y)
            y = self.act(self.norm(name="bn2")(y))
            y = self._conv(width, 3, self.strides, "conv2", self.groups)(y)
            y = self._dropout(self.act(self.norm(name="bn3")(y)))
            y = self._conv(out_features, 1, 1, "conv3", zero=zero)(y)
            return self._merge(y, sc, out_features)
        y = self.act(self.norm(name="bn1")(self._conv(width, 1, 1, "conv1")(x)))
        y = self._conv(width, 3, self.strides, "conv2", self.groups)(y)
        y = self._dropout(self.act(self.norm(name="bn2")(y)))
        y = self._conv(out_features, 1, 1, "conv3")(y)
        y = self.norm(name="bn3", zero_scale=zero)(y)
        return self._merge(y, x, out_features)
