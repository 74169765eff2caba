"""Model names -> families (``functools.partial(ResNet, ...)``: a choice of parts and stage
sizes); ``create``, ``names``, ``spec``. A new family is one ``register`` line.

Every family can also be built without shortcuts: prefix its name with
``plain_`` (``plain_resnet20``) or pass ``plain=True``. Each name records its
natural number of classes and input shape (``spec``); ``create`` uses that
class count unless given one. Wide ResNets resolve any ``wrn_<depth>_<k>`` with
``depth = 6n + 4``, registered or not.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from functools import partial

import flax.linen as nn

from resnet_flax.models import layers
from resnet_flax.models import options as model_options
from resnet_flax.models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from resnet_flax.models.parts import BadOption, part_class, part_settings
from resnet_flax.models.resnet import ResNet, UnknownParts
from resnet_flax.models.shortcuts import AvgDownShortcut, PadShortcut
from resnet_flax.models.stems import cifar_stem, deep_stem
from resnet_flax.suggest import closest

PLAIN_PREFIX = "plain_"

_IMAGENET_WIDTHS = (64, 128, 256, 512)
_CIFAR_WIDTHS = (16, 32, 64)
_WRN = re.compile(r"wrn_(\d+)_(\d+)")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered model: its factory and natural classes / input (H, W, C)."""

    factory: Callable[..., ResNet]
    num_classes: int = 1000
    input_shape: tuple[int, int, int] = (224, 224, 3)


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, factory: Callable[..., ResNet], *, num_classes: int = 1000,
             input_shape: tuple[int, int, int] = (224, 224, 3)) -> None:
    """Adds ``factory`` (a ``partial`` of ``ResNet``: its parts and stage sizes) as ``name``."""
    if name in _REGISTRY or name.startswith(PLAIN_PREFIX):
        raise ValueError(f"cannot register model name {name!r}")
    _REGISTRY[name] = ModelSpec(factory, num_classes, tuple(input_shape))


def net(stage_sizes, stage_widths=_IMAGENET_WIDTHS, block=BasicBlock, **parts):
    """A family: ``ResNet`` with these stages and parts (the ImageNet stem and widths,
    torchvision's option-B shortcuts and BatchNorm unless given)."""
    return functools.partial(ResNet, stage_sizes=tuple(stage_sizes),
                             stage_widths=tuple(stage_widths), block=block, **parts)


def _cifar(n: int):
    """He et al. 2015 sec. 4.2: 6n+2 layers, 16/32/64 channels, option-A shortcuts."""
    return net((n, n, n), _CIFAR_WIDTHS, stem=cifar_stem, stem_width=16, shortcut=PadShortcut)


def _wrn(depth: int, k: int):
    """Zagoruyko & Komodakis 2016: WRN-d-k, pre-activation basic blocks, (d-4)/6 per
    stage, widths 16k/32k/64k, 1x1 projections (no BN), dropout 0.3 between convs."""
    if depth < 10 or (depth - 4) % 6 or k < 1:
        raise ValueError(f"wrn_{depth}_{k}: depth must be 6n + 4 (n >= 1), k >= 1")
    n = (depth - 4) // 6
    return net((n, n, n), (16 * k, 32 * k, 64 * k), partial(PreActBasicBlock, block_dropout=0.3),
               stem=cifar_stem, stem_width=16)


_CIFAR = {"num_classes": 10, "input_shape": (32, 32, 3)}

# He et al. 2015, table 1 (torchvision layout); resnet200 as in He et al. 2016 / timm.
register("resnet18", net((2, 2, 2, 2)))
register("resnet34", net((3, 4, 6, 3)))
register("resnet50", net((3, 4, 6, 3), block=Bottleneck))
register("resnet101", net((3, 4, 23, 3), block=Bottleneck))
register("resnet152", net((3, 8, 36, 3), block=Bottleneck))
register("resnet200", net((3, 24, 36, 3), block=Bottleneck))
# ResNeXt (Xie et al. 2017) and Wide ResNet-50/101-2, torchvision's definitions.
for _name, _sizes, _groups, _width in (
        ("resnext50_32x4d", (3, 4, 6, 3), 32, 4),
        ("resnext101_32x8d", (3, 4, 23, 3), 32, 8),
        ("resnext101_64x4d", (3, 4, 23, 3), 64, 4),
        ("wide_resnet50_2", (3, 4, 6, 3), 1, 128),
        ("wide_resnet101_2", (3, 4, 23, 3), 1, 128)):
    register(_name, net(_sizes, block=partial(Bottleneck, groups=_groups, base_width=_width)))
# ResNet-D (He et al. 2019; timm's resnet50d): deep stem, avg-pool shortcuts.
register("resnet50d", net((3, 4, 6, 3), block=Bottleneck, stem=deep_stem, stem_width=32,
                          shortcut=AvgDownShortcut))
# SE-ResNet-50 (Hu et al. 2018; timm's seresnet50): SE after the last BN, r = 16.
register("se_resnet50", net((3, 4, 6, 3), block=partial(Bottleneck, se_reduction=16)))

# CIFAR, He et al. 2015 sec. 4.2.
for _depth in (20, 32, 44, 56, 110, 1202):
    register(f"resnet{_depth}", _cifar((_depth - 2) // 6), **_CIFAR)
# Pre-activation (He et al. 2016). 18: the ImageNet-18 layout on 32x32 (kuangliu's
# PreActResNet18, plus the paper's final BN-ReLU); 164/1001: 9n+2 bottleneck layers,
# widths 16/32/64 (x4 outputs), 1x1 projections.
register("preact_resnet18", net((2, 2, 2, 2), block=PreActBasicBlock, stem=cifar_stem),
         **_CIFAR)
for _depth in (164, 1001):
    _n = (_depth - 2) // 9
    register(f"preact_resnet{_depth}", net((_n, _n, _n), _CIFAR_WIDTHS, PreActBottleneck,
                                           stem=cifar_stem, stem_width=16), **_CIFAR)
for _depth, _k in ((16, 4), (16, 8), (28, 10), (40, 4)):
    register(f"wrn_{_depth}_{_k}", _wrn(_depth, _k), **_CIFAR)
# ResNeXt-29 (Xie et al. 2017, CIFAR): 3 stages x 3 bottlenecks, 64-channel stem,
# outputs 256/512/1024, cardinality C with 64-channel groups (3x3 width 64 C 2^i).
for _card in (8, 16):
    register(f"resnext29_{_card}x64d", net((3, 3, 3), (64, 128, 256), partial(
        Bottleneck, groups=_card), stem=cifar_stem, stem_width=64), **_CIFAR)

# The tutorial nets. CIFAR: conv64, blocks 64, 64, 128/2, 128, 1x1 projections.
register("cifar_resnet4", net((2, 2), (64, 128), stem=cifar_stem, stem_width=64), **_CIFAR)
# Fashion-MNIST: conv32, 2x32, 2x64/2, 2x128/2, dropout 0.3 before the head.
register("fashion_mnist_resnet", net((2, 2, 2), (32, 64, 128), stem=cifar_stem, stem_width=32,
                                     dropout_rate=0.3), num_classes=10, input_shape=(28, 28, 1))
# ResNet-34 as Geron's Keras tutorial builds it (Hands-On ML, ch. 14): the ResNet-34
# layout with Keras' defaults (glorot-uniform convs, BN momentum 0.99, eps 1e-3) and a
# 10-class head. (Keras pads 'same'; here torch's symmetric padding, as everywhere.)
register("keras_resnet34", net(
    (3, 4, 6, 3), conv=partial(layers.conv, conv_init=layers.CONV_INITS["keras_default"]),
    norm=partial(nn.BatchNorm, momentum=0.99, epsilon=1e-3)), num_classes=10)


def names() -> list[str]:
    """Registered model names (each also exists as ``plain_<name>``)."""
    return sorted(_REGISTRY)


def spec(name: str) -> ModelSpec:
    """The ``ModelSpec`` of ``name`` (``plain_`` prefix allowed)."""
    base = name[len(PLAIN_PREFIX):] if name.startswith(PLAIN_PREFIX) else name
    if base in _REGISTRY:
        return _REGISTRY[base]
    match = _WRN.fullmatch(base)
    if match:
        return ModelSpec(_wrn(int(match[1]), int(match[2])), **_CIFAR)
    # One short line: the two nearest names (as plain_ twins for a plain_ name), and
    # where the whole list is.
    prefix = PLAIN_PREFIX if name.startswith(PLAIN_PREFIX) else ""
    near = closest(name, [prefix + n for n in names()], n=2)
    raise ValueError(f"unknown model {name!r}{near or ';'} `python -m resnet_flax.summary "
                     f"--zoo` lists all {len(names())} (each also as {PLAIN_PREFIX}<name>; any "
                     "wrn_<6n+4>_<k>)")


def create(name: str, num_classes: int | None = None, **options) -> ResNet:
    """Builds the model called ``name`` with ``num_classes`` outputs.

    ``num_classes`` defaults to the model's natural one (1000 for ImageNet nets,
    10 for CIFAR and Fashion-MNIST nets). ``options`` are ``config.model_options``'
    names (``dtype="bfloat16"``, ``shortcut="C"``, ``zero_init_residual=True``, ...),
    each set on the part that owns it (``options``), or ``ResNet``'s own fields.
    """
    model_spec = spec(name)
    if name.startswith(PLAIN_PREFIX):
        options = {**options, "plain": True}
    if num_classes is None:
        num_classes = model_spec.num_classes
    try:
        parts = model_options.apply(part_settings(model_spec.factory), options)
        model = part_class(model_spec.factory)(**{**parts, "num_classes": num_classes})
        model.check_options()
    except UnknownParts:  # Its caller names the setting.
        raise
    except BadOption as e:
        raise BadOption(e.option, e.line, f"{name!r}: ") from None
    except ValueError as e:
        raise ValueError(f"{name!r}: {e}") from None
    return model
