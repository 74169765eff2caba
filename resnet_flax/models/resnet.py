"""The generic ``ResNet``: a stem, stages of blocks and a head, assembled from the parts it
is handed. Every family in the registry is a ``functools.partial`` of it: a choice of
parts and stage sizes."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.nn import initializers

from resnet_flax.models import cross_device, layers
from resnet_flax.models.blocks import BasicBlock
from resnet_flax.models.norms import BATCH_NORM, NoNorm
from resnet_flax.models.parts import Factory, Option, part_class, part_settings
from resnet_flax.models.shortcuts import ProjectionShortcut
from resnet_flax.models.stems import imagenet_stem, layer_names

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
OPTIONS = (
    Option("dtype", str, "the compute dtype; parameters stay float32", DTYPES),
    Option("width_multiplier", float, "scales the stem's and every stage's width", low=0.0),
    Option("stem_width", int, "the stem's channels", low=1),
    Option("dropout_rate", float, "dropout before the head", low=0.0, high=1.0),
    Option("stochastic_depth", float, "the last block's rate of dropping its branch "
           "(Huang et al.'s linear rule)", low=0.0, high=1.0),
)

# torch's nn.Linear weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
TORCH_DENSE_INIT = initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


# The head's own layers: a pre-activation net's final norm and the classifier.
HEAD_LAYERS = ("bn_final", "fc")
_BLOCK_NAME = re.compile(r"layer(\d+)_\d+")


class UnknownParts(ValueError):
    """Parts to freeze that the network does not have."""

    def __init__(self, unknown: list[str], parts: tuple[str, ...]):
        super().__init__(f"cannot freeze {unknown}: the parts are {parts}")
        self.unknown, self.parts = unknown, parts


class ResNet(nn.Module):
    """A residual network: stem, stages of blocks, global average pool, dense head.

    Attributes:
      stage_sizes / stage_widths: blocks per stage, and their ``features`` (a
        bottleneck's width before expansion).
      block: the block class (``blocks``), its own options bound with ``partial``.
      stem: the stem function (``stems``) and stem_width its channels.
      shortcut: the shortcut class (``shortcuts``); None: a plain net (no shortcuts).
      conv: the conv factory (``layers.conv`` with the initializer and bias bound).
      norm: the norm factory (``norms``); the parallel layer binds what spans devices.
      activation: the activation.
      dropout: the dropout factory (``cross_device.Dropout``; pmap's axis bound).
      num_classes: size of the classifier head.
      dtype: compute dtype; parameters are always float32.
      width_multiplier: scales the stem and every stage width.
      dropout_rate: dropout before the head.
      stochastic_depth: drop rate of the last block; block l of L drops its branch
        with rate ``stochastic_depth * l / L`` (Huang et al.'s linear rule).
        Needs a ``'dropout'`` rng in training.
      frozen: parts (``stem``, ``stage1``..) whose norms use their running statistics
        even in training and leave them unchanged (fine-tuning with a frozen backbone
        part); where the stem and the first stages are all frozen, no gradient flows
        back into them.
    """

    stage_sizes: Sequence[int]
    stage_widths: Sequence[int]
    block: Factory = BasicBlock
    stem: Factory = imagenet_stem
    stem_width: int = 64
    shortcut: Factory | None = ProjectionShortcut
    conv: Factory = layers.conv
    norm: Factory = BATCH_NORM
    activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu
    dropout: Factory = cross_device.Dropout
    num_classes: int = 1000
    dtype: Any = jnp.float32
    width_multiplier: float = 1.0
    dropout_rate: float = 0.0
    stochastic_depth: float = 0.0
    frozen: Sequence[str] = ()

    def widths(self) -> tuple[int, list[int]]:
        """(stem width, stage widths) after ``width_multiplier``."""
        scale = lambda w: max(1, int(round(w * self.width_multiplier)))  # noqa: E731
        return scale(self.stem_width), [scale(w) for w in self.stage_widths]

    def parts(self) -> tuple[str, ...]:
        """The parts ``frozen`` may name, input to output (the head is never frozen)."""
        return ("stem", *(f"stage{i + 1}" for i in range(len(self.stage_sizes))))

    def part_of(self, layer_name: str) -> str:
        """The part a top-level layer belongs to: ``stem`` (the layers its stem declares),
        ``stage<i>`` (its blocks ``layer<i>_<j>``) or ``head``; ``ValueError`` for a layer
        no part declares."""
        if layer_name in layer_names(self.stem):
            return "stem"
        if block := _BLOCK_NAME.fullmatch(layer_name):
            return f"stage{block[1]}"
        if layer_name in HEAD_LAYERS:
            return "head"
        raise ValueError(f"layer {layer_name!r} belongs to no part: the stem declares "
                         f"{layer_names(self.stem)}, the head {HEAD_LAYERS}")

    def pre_activation(self) -> bool:
        """Whether the blocks are pre-activation ones (the stem then leaves its last norm
        to the first block, and a final norm-activation precedes the pooling)."""
        return getattr(part_class(self.block), "pre_activation", False)

    def _stop_gradient_after(self, part: str, x):
        """``x`` with no gradient when ``part`` and every part before it are frozen."""
        parts = self.parts()
        if all(p in self.frozen for p in parts[:parts.index(part) + 1]):
            return jax.lax.stop_gradient(x)
        return x

    def check_options(self) -> None:
        """Raises ``ValueError`` on parts no model can be built from (``create`` calls it
        once, not each trace)."""
        if len(self.stage_sizes) != len(self.stage_widths):
            raise ValueError(
                f"stage_sizes {tuple(self.stage_sizes)} and stage_widths "
                f"{tuple(self.stage_widths)} must have the same length")
        if self.shortcut is None and self.stochastic_depth:
            raise ValueError("stochastic_depth drops residual branches; a plain net has none")
        zero_init = part_settings(self.block).get("zero_init_residual")
        if part_class(self.norm) is NoNorm and zero_init and not self.pre_activation():
            raise ValueError("zero_init_residual zeroes each block's last norm scale, and "
                             "norm='none' has none")
        layer_names(self.stem)  # It declares its layers, for freezing and lr groups.
        unknown = sorted(set(self.frozen) - set(self.parts()))
        if unknown:
            raise UnknownParts(unknown, self.parts())
        self.block(features=1, parent=None)  # A block checks its own fields as it is made.

    def _stages(self, x, conv, norms, dropout, features):
        """The stages of blocks, each block's stride and stochastic-depth rate."""
        _, stage_widths = self.widths()
        total, index = sum(self.stage_sizes), 0
        for i, (num_blocks, width) in enumerate(zip(self.stage_sizes, stage_widths, strict=True)):
            for j in range(num_blocks):
                index += 1
                x = self.block(
                    features=width, strides=2 if (i > 0 and j == 0) else 1, conv=conv,
                    norm=norms[f"stage{i + 1}"], activation=self.activation, shortcut=self.shortcut,
                    dropout=dropout, drop_path=self.stochastic_depth * index / total,
                    name=f"layer{i + 1}_{j}")(x)
            x = features[f"stage{i + 1}"] = self._stop_gradient_after(f"stage{i + 1}", x)
        return x

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool, return_features: bool = False):
        """Logits for NHWC images ``x``; with ``return_features`` a dict of
        ``stem``, ``stage1``..``stageN``, ``pooled`` and ``logits``."""
        dtype = jnp.dtype(self.dtype)
        conv = functools.partial(self.conv, dtype=dtype)
        norms = {part: functools.partial(self.norm, dtype=dtype, use_running_average=not (
            train and part not in self.frozen)) for part in self.parts()}
        dropout = functools.partial(self.dropout, deterministic=not train)
        stem_width, _ = self.widths()
        x = self.stem(jnp.asarray(x, dtype), stem_width, conv=conv, norm=norms["stem"],
                      activation=self.activation, norm_last=not self.pre_activation())
        x = self._stop_gradient_after("stem", x)
        features = {"stem": x}
        x = self._stages(x, conv, norms, dropout, features)
        if self.pre_activation():
            final_norm = functools.partial(self.norm, dtype=dtype, use_running_average=not train)
            x = self.activation(final_norm(name="bn_final")(x))
        x = features["pooled"] = layers.global_avg_pool(x)
        x = dropout(self.dropout_rate)(x)
        x = nn.Dense(self.num_classes, dtype=dtype, param_dtype=jnp.float32,
                     kernel_init=TORCH_DENSE_INIT, name="fc")(x)
        logits = jnp.asarray(x, jnp.float32)
        if return_features:
            return {**features, "logits": logits}
        return logits
