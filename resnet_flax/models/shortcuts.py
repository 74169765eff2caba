"""The identity path of a block (He et al. 2015, section 4.1), one class per option.

  "A" ``PadShortcut``: identity; where the shape changes, subsample by the stride and
      zero-pad the new channels (parameter-free; the CIFAR networks use it).
  "B" ``ProjectionShortcut``: identity; a 1x1 projection conv + norm only where the
      shape changes (torchvision's choice for ImageNet).
  "C" ``FullProjectionShortcut``: a projection on every block.
  "D" ``AvgDownShortcut``: like "B", but a stride-2 projection is a 2x2 average pool
      followed by a stride-1 1x1 conv + norm (ResNet-D, He et al. 2019 "Bag of Tricks";
      timm's ``avg_down``), so the projection sees every pixel.
A network built with ``shortcut=None`` has none: the plain twin of the degradation
experiment (paper fig. 1/4).

A block makes its shortcut as ``shortcut(features, strides, conv=..., norm=...,
name="downsample")``; ``norm=None`` leaves the norm off projections (pre-activation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

from resnet_flax.models import layers
from resnet_flax.models.parts import Option


class Shortcut(nn.Module):
    """The identity where the block keeps its shape; subclasses reshape where it changes."""

    features: int
    strides: int = 1
    conv: Callable[..., nn.Module] = layers.conv
    norm: Callable[..., nn.Module] | None = None

    always_transforms: ClassVar[bool] = False

    def transforms(self, in_features: int) -> bool:
        """Whether this shortcut changes an input of ``in_features`` channels."""
        return self.always_transforms or self.strides != 1 or in_features != self.features

    def reshape(self, x: jnp.ndarray) -> jnp.ndarray:
        raise NotImplementedError

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return self.reshape(x) if self.transforms(x.shape[-1]) else x


class PadShortcut(Shortcut):
    """Option A: subsample by the stride, zero-pad the new channels on both sides."""

    def reshape(self, x: jnp.ndarray) -> jnp.ndarray:
        in_features = x.shape[-1]
        if self.features < in_features:
            raise ValueError(
                f"shortcut 'A' cannot shrink {in_features} to {self.features} channels; use 'B'")
        x = x[:, :: self.strides, :: self.strides, :]
        extra = self.features - in_features
        return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


class ProjectionShortcut(Shortcut):
    """Option B: a strided 1x1 conv (+ norm) where the shape changes."""

    def project(self, x: jnp.ndarray, strides: int) -> jnp.ndarray:
        x = self.conv(self.features, 1, strides, name="conv")(x)
        return x if self.norm is None else self.norm(name="bn")(x)

    def reshape(self, x: jnp.ndarray) -> jnp.ndarray:
        return self.project(x, self.strides)


class FullProjectionShortcut(ProjectionShortcut):
    """Option C: a projection on every block."""

    always_transforms = True


class AvgDownShortcut(ProjectionShortcut):
    """Option D (ResNet-D): a 2x2 average pool, then a stride-1 projection."""

    def reshape(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.strides == 1:
            return self.project(x, 1)
        if self.strides != 2:
            raise ValueError("shortcut 'D' supports strides 1 and 2 only")
        return self.project(layers.avg_pool_2x2_ceil(x), 1)


# config.model_options.shortcut -> the class.
SHORTCUTS: dict[str, Any] = {"A": PadShortcut, "B": ProjectionShortcut,
                             "C": FullProjectionShortcut, "D": AvgDownShortcut}
OPTIONS = (
    Option("shortcut", str, "`A` subsample and zero-pad, `B` a projection where the shape "
           "changes, `C` a projection everywhere, `D` an average-pooled projection (ResNet-D)",
           SHORTCUTS),
    Option("plain", bool, "`True`: no shortcuts, the net's plain twin"),
)
