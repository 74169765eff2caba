"""Residual networks in Flax linen, assembled from parts: ``create(name, num_classes=...)``,
``from_config(config, num_classes)``, ``names()``, ``register(name, factory)``; the parts
in ``stems``, ``blocks``, ``shortcuts``, ``norms`` and ``layers``."""

from resnet_flax.models.blocks import (
    BasicBlock,
    Block,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ResidualBlock,
    SqueezeExcite,
)
from resnet_flax.models.configured import from_config
from resnet_flax.models.parts import part_class, part_settings
from resnet_flax.models.registry import ModelSpec, create, names, net, register, spec
from resnet_flax.models.resnet import ResNet
from resnet_flax.models.shortcuts import (
    SHORTCUTS,
    AvgDownShortcut,
    FullProjectionShortcut,
    PadShortcut,
    ProjectionShortcut,
    Shortcut,
)
from resnet_flax.models.stems import STEMS, cifar_stem, deep_stem, imagenet_stem

__all__ = [
    "SHORTCUTS", "STEMS", "AvgDownShortcut", "BasicBlock", "Block", "Bottleneck",
    "FullProjectionShortcut", "ModelSpec", "PadShortcut", "PreActBasicBlock",
    "PreActBottleneck", "ProjectionShortcut", "ResNet", "ResidualBlock", "Shortcut",
    "SqueezeExcite", "cifar_stem", "create", "deep_stem", "from_config", "imagenet_stem",
    "names", "net",
    "part_class", "part_settings", "register", "spec",
]
