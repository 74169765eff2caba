"""Residual blocks (He et al. 2015, 2016).

``Block`` is what the network hands every block: its width and stride, the conv, norm,
activation, shortcut and dropout factories, and its stochastic-depth rate. A block of
your own subclasses it and needs nothing else (tests/models/test_parts.py adds one).

The four built in: ``BasicBlock`` (two 3x3 convs) and ``Bottleneck`` (1x1-3x3-1x1,
torchvision's "v1.5"), and their pre-activation twins (He et al. 2016, "Identity
Mappings": norm-activation-conv inside the branch, nothing after the addition,
projections without a norm; where the shortcut transforms its input it takes the
pre-activated input, as in the authors' code and the official Wide ResNet). Their own
options, bound by the registry or ``config.model_options``: ``zero_init_residual``,
squeeze-excitation (``se_reduction``; the SE gate's hidden ReLU stays, as in Hu et al.),
dropout between the convs (``block_dropout``, Wide ResNet) and, for bottlenecks,
``groups`` and ``base_width`` (ResNeXt and wide nets, as torchvision defines them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp
from jax.nn import initializers

from resnet_flax.models import cross_device, layers
from resnet_flax.models.norms import BATCH_NORM
from resnet_flax.models.parts import Factory, Option
from resnet_flax.models.shortcuts import ProjectionShortcut


def se_width(channels: int, reduction: int, divisor: int = 8) -> int:
    """Hidden width of an SE module: ``channels / reduction`` rounded to a multiple
    of ``divisor`` (at least ``divisor``), timm's ``make_divisible``; for every
    SE-ResNet-50 layer it equals Hu et al.'s ``channels // 16``."""
    v = channels / reduction
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): channel gates from pooled features.

    ``fc1``/``fc2`` are 1x1 convs with bias, as in timm, so torch weights map 1:1.
    """

    reduction: int = 16
    conv: Factory = layers.conv

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        channels = x.shape[-1]
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = nn.relu(self.conv(se_width(channels, self.reduction), 1, conv_bias=True,
                              name="fc1")(s))
        s = nn.sigmoid(self.conv(channels, 1, conv_bias=True, name="fc2")(s))
        return x * s


class Block(nn.Module):
    """What the network hands every block (``shortcut=None``: a plain net's block)."""

    features: int
    strides: int = 1
    conv: Factory = layers.conv
    norm: Factory = BATCH_NORM
    activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu
    shortcut: Factory | None = ProjectionShortcut
    dropout: Factory = cross_device.Dropout
    drop_path: float = 0.0  # Stochastic depth: this block's rate of dropping its branch.

    expansion: ClassVar[int] = 1  # Output channels per unit of ``features``.
    pre_activation: ClassVar[bool] = False  # The network then ends in a norm-activation.

    def make_shortcut(self, out_features: int, with_norm: bool = True) -> nn.Module | None:
        if self.shortcut is None:
            return None
        return self.shortcut(out_features, self.strides, conv=self.conv,
                             norm=self.norm if with_norm else None, name="downsample")

    def add_shortcut(self, y, shortcut: nn.Module | None, shortcut_in):
        """``y`` (dropped whole per sample at ``drop_path``) plus the shortcut of
        ``shortcut_in``; ``y`` alone without a shortcut."""
        if shortcut is None:
            return y
        return layers.DropPath(self.drop_path, self.dropout, name="drop_path")(y) + shortcut(
            shortcut_in)


class ResidualBlock(Block):
    """The built-in blocks' own options and their shared steps."""

    zero_init_residual: bool = False  # Start the branch at zero (see each block).
    se_reduction: int = 0  # Squeeze-excitation's reduction; 0: none.
    block_dropout: float = 0.0  # Dropout between the convs (Wide ResNet).

    def last_norm(self, name: str):
        """The branch's last norm; zero-init starts its scale at zero."""
        return self.norm(name=name, **(
            {"scale_init": initializers.zeros} if self.zero_init_residual else {}))

    def last_conv(self, features: int, kernel: int, name: str):
        """A pre-activation branch's last conv; zero-init starts its kernel at zero (a zero
        norm scale there would feed the activation exact zeros, and no gradient)."""
        return self.conv(features, kernel, 1, name=name, **(
            {"conv_init": initializers.zeros} if self.zero_init_residual else {}))

    def merge(self, y, shortcut: nn.Module | None, shortcut_in):
        """Squeeze-excitation, then the shortcut's addition."""
        if self.se_reduction:
            y = SqueezeExcite(self.se_reduction, self.conv, name="se")(y)
        return self.add_shortcut(y, shortcut, shortcut_in)

    def preactivate(self, x, shortcut: nn.Module | None):
        """(branch input, shortcut input) of a pre-activation block."""
        a = self.activation(self.norm(name="bn1")(x))
        return a, (a if shortcut is not None and shortcut.transforms(x.shape[-1]) else x)


class BasicBlock(ResidualBlock):
    """Two 3x3 convs (torchvision's ``BasicBlock``); ``features`` output channels.
    Zero-init of the residual zeroes the last norm's scale."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        y = self.conv(self.features, 3, self.strides, name="conv1")(x)
        y = self.dropout(self.block_dropout)(self.activation(self.norm(name="bn1")(y)))
        y = self.last_norm("bn2")(self.conv(self.features, 3, 1, name="conv2")(y))
        return self.activation(self.merge(y, self.make_shortcut(self.features), x))


class PreActBasicBlock(BasicBlock):
    """``BasicBlock`` in pre-activation order; zero-init zeroes the last conv's kernel."""

    pre_activation = True

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        shortcut = self.make_shortcut(self.features, with_norm=False)
        y, shortcut_in = self.preactivate(x, shortcut)
        y = self.conv(self.features, 3, self.strides, name="conv1")(y)
        y = self.dropout(self.block_dropout)(self.activation(self.norm(name="bn2")(y)))
        y = self.last_conv(self.features, 3, "conv2")(y)
        return self.merge(y, shortcut, shortcut_in)


class Bottleneck(ResidualBlock):
    """1x1 - 3x3 - 1x1 with the stride on the 3x3 (torchvision's "v1.5").

    ``features`` is the width before expansion ("planes" in torch); the 3x3 has
    ``int(features * base_width / 64) * groups`` channels, in ``groups`` groups.
    """

    groups: int = 1  # ResNeXt's cardinality.
    base_width: int = 64  # Width per group at 64 planes (128: wide_resnet50_2).

    expansion = 4

    def __post_init__(self):
        if self.groups < 1 or self.base_width < 1:
            raise ValueError(f"groups={self.groups} and base_width={self.base_width} "
                             "must be >= 1")
        super().__post_init__()

    def width(self) -> int:
        return int(self.features * (self.base_width / 64.0)) * self.groups

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        out_features = self.features * self.expansion
        y = self.activation(self.norm(name="bn1")(self.conv(self.width(), 1, 1, name="conv1")(x)))
        y = self.conv(self.width(), 3, self.strides, groups=self.groups, name="conv2")(y)
        y = self.dropout(self.block_dropout)(self.activation(self.norm(name="bn2")(y)))
        y = self.last_norm("bn3")(self.conv(out_features, 1, 1, name="conv3")(y))
        return self.activation(self.merge(y, self.make_shortcut(out_features), x))


class PreActBottleneck(Bottleneck):
    """``Bottleneck`` in pre-activation order; zero-init zeroes the last conv's kernel."""

    pre_activation = True

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        out_features = self.features * self.expansion
        shortcut = self.make_shortcut(out_features, with_norm=False)
        y, shortcut_in = self.preactivate(x, shortcut)
        y = self.activation(self.norm(name="bn2")(self.conv(self.width(), 1, 1, name="conv1")(y)))
        y = self.conv(self.width(), 3, self.strides, groups=self.groups, name="conv2")(y)
        y = self.dropout(self.block_dropout)(self.activation(self.norm(name="bn3")(y)))
        y = self.last_conv(out_features, 1, "conv3")(y)
        return self.merge(y, shortcut, shortcut_in)


# A block -> its pre-activation twin (``config.model_options.preact``), and back.
PRE_ACTIVATION = {BasicBlock: PreActBasicBlock, Bottleneck: PreActBottleneck}
POST_ACTIVATION = {v: k for k, v in PRE_ACTIVATION.items()}

OPTIONS = (
    Option("preact", bool, "`True`: pre-activation units (He et al. 2016), `False`: "
           "post-activation ones"),
    Option("zero_init_residual", bool, "start each residual branch at zero: its last norm "
           "scale (its last conv in pre-activation units)"),
    Option("se_reduction", int, "squeeze-excitation's reduction (16); 0: none", low=0),
    Option("block_dropout", float, "dropout between a block's convolutions (Wide ResNet)",
           low=0.0, high=1.0),
    Option("groups", int, "torchvision's `groups` for bottleneck models: `resnet50` with "
           "`groups=32, base_width=4` is `resnext50_32x4d`"),
    Option("base_width", int, "torchvision's `width_per_group` for bottleneck models"),
)
