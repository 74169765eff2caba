"""Residual networks in Flax linen: ``create(name, num_classes=...)`` and ``names()``."""

from resnet_flax.models.blocks import BasicBlock, Bottleneck, Shortcut, SqueezeExcite
from resnet_flax.models.registry import ModelSpec, create, names, register, spec
from resnet_flax.models.resnet import STEMS, ResNet, part_of

__all__ = [
    "STEMS", "BasicBlock", "Bottleneck", "ModelSpec", "ResNet", "Shortcut", "SqueezeExcite",
    "create",
    "names", "part_of", "register", "spec",
]
