"""One ``ResNet`` module; every family is a ``functools.partial`` of it (see registry)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax.nn import initializers

from resnet_flax.models import layers
from resnet_flax.models.blocks import BasicBlock

STEMS = ("imagenet", "deep", "cifar")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}

# torch's nn.Linear weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
TORCH_DENSE_INIT = initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def compute_dtype(name: Any) -> Any:
    """The jnp dtype for a config string like ``"bfloat16"`` (parameters stay float32)."""
    if not isinstance(name, str):
        return name
    if name not in DTYPES:
        raise ValueError(f"dtype={name!r} is not one of {sorted(DTYPES)}")
    return DTYPES[name]


class ResNet(nn.Module):
    """A residual network: stem, stages of blocks, global average pool, dense head.

    Attributes:
      stage_sizes: blocks per stage.
      stage_widths: block ``features`` per stage (bottleneck width for Bottleneck).
      block_cls: ``BasicBlock`` or ``Bottleneck`` (or any module with that signature).
      num_classes: size of the classifier head.
      stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool), "deep" (ResNet-C/D: three
        3x3 convs of ``stem_width``, ``stem_width``, ``2 * stem_width`` channels,
        the first with stride 2, + max-pool) or "cifar" (one 3x3 conv).
      stem_width: channels of the stem conv (of the first two, for "deep").
      shortcut: "A", "B", "C" or "D" (see ``blocks``).
      plain: build without shortcuts (the degradation-experiment twin).
      zero_init_residual: start each branch at zero (last BN scale; last conv
        kernel in pre-activation blocks).
      dropout_rate: dropout before the head.
      conv_init: "kaiming_fan_out" (torch), "flax_default" or "keras_default".
      bn_momentum / bn_epsilon: BN running-average momentum and epsilon.
      bn_convention: how ``bn_momentum`` reads: "flax" (running = m * running +
        (1 - m) * batch; torch's 0.1 is 0.9 here) or "torch" (0.1 means 0.1).
      dtype: compute dtype name; parameters are always float32.
      block_kwargs: extra fields for every block (e.g. groups, base_width).
      preact: pre-activation blocks (He et al. 2016): the stem loses its BN-ReLU
        and a final BN-ReLU ("bn_final") precedes the pooling.
      se_reduction: squeeze-excitation in every block with this reduction (0: none).
      stochastic_depth: drop rate of the last block; block l of L drops its branch
        with rate ``stochastic_depth * l / L`` (Huang et al.'s linear rule).
        Needs a ``'dropout'`` rng in training.
      block_dropout: dropout between the convs of each block (Wide ResNet).
      width_multiplier: scales the stem and every stage width.
    """

    stage_sizes: Sequence[int]
    stage_widths: Sequence[int]
    block_cls: Any = BasicBlock
    num_classes: int = 1000
    stem: str = "imagenet"
    stem_width: int = 64
    shortcut: str = "B"
    plain: bool = False
    zero_init_residual: bool = False
    dropout_rate: float = 0.0
    conv_init: str = "kaiming_fan_out"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    dtype: Any = "float32"
    block_kwargs: Any = None
    preact: bool = False
    se_reduction: int = 0
    stochastic_depth: float = 0.0
    block_dropout: float = 0.0
    width_multiplier: float = 1.0
    bn_convention: str = "flax"

    def widths(self) -> tuple[int, list[int]]:
        """(stem width, stage widths) after ``width_multiplier``."""
        scale = lambda w: max(1, int(round(w * self.width_multiplier)))  # noqa: E731
        return scale(self.stem_width), [scale(w) for w in self.stage_widths]

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool, return_features: bool = False):
        """Logits for NHWC images ``x``; with ``return_features`` a dict of
        ``stem``, ``stage1``..``stageN``, ``pooled`` and ``logits``."""
        if self.stem not in STEMS:
            raise ValueError(f"stem={self.stem!r} is not one of {STEMS}")
        if len(self.stage_sizes) != len(self.stage_widths):
            raise ValueError(
                f"stage_sizes {tuple(self.stage_sizes)} and stage_widths "
                f"{tuple(self.stage_widths)} must have the same length")
        if self.plain and self.stochastic_depth:
            raise ValueError("stochastic_depth drops residual branches; a plain net has none")
        dtype = compute_dtype(self.dtype)
        kernel_init = layers.conv_initializer(self.conv_init)
        momentum = layers.flax_momentum(self.bn_momentum, self.bn_convention)
        norm = layers.norm_factory(train, momentum, self.bn_epsilon, dtype)
        conv = lambda f, k, s, name: layers.conv(  # noqa: E731
            f, k, s, dtype=dtype, kernel_init=kernel_init, name=name)
        stem_width, stage_widths = self.widths()
        features = {}

        x = jnp.asarray(x, dtype)
        if self.stem == "deep":
            # timm's conv1 = Sequential(conv, bn, relu, conv, bn, relu, conv); then bn1.
            x = nn.relu(norm(name="bn1_0")(conv(stem_width, 3, 2, "conv1_0")(x)))
            x = nn.relu(norm(name="bn1_1")(conv(stem_width, 3, 1, "conv1_1")(x)))
            x = conv(2 * stem_width, 3, 1, "conv1_2")(x)
        else:
            k, s = (3, 1) if self.stem == "cifar" else (7, 2)
            x = conv(stem_width, k, s, "conv1")(x)
        if not self.preact:
            x = nn.relu(norm(name="bn1")(x))
        if self.stem != "cifar":
            x = layers.max_pool_3x3_s2(x)
        features["stem"] = x

        total, index = sum(self.stage_sizes), 0
        for i, (num_blocks, width) in enumerate(zip(self.stage_sizes, stage_widths, strict=True)):
            for j in range(num_blocks):
                index += 1
                x = self.block_cls(
                    features=width,
                    strides=2 if (i > 0 and j == 0) else 1,
                    norm=norm,
                    conv_init=kernel_init,
                    shortcut=self.shortcut,
                    plain=self.plain,
                    zero_init_residual=self.zero_init_residual,
                    preact=self.preact,
                    se_reduction=self.se_reduction,
                    drop_path=self.stochastic_depth * index / total,
                    dropout_rate=self.block_dropout,
                    deterministic=not train,
                    dtype=dtype,
                    name=f"layer{i + 1}_{j}",
                    **(self.block_kwargs or {}),
                )(x)
            features[f"stage{i + 1}"] = x
        if self.preact:
            x = nn.relu(norm(name="bn_final")(x))

        x = layers.global_avg_pool(x)
        features["pooled"] = x
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=dtype, param_dtype=jnp.float32,
                     kernel_init=TORCH_DENSE_INIT, name="fc")(x)
        logits = jnp.asarray(x, jnp.float32)
        if return_features:
            return {**features, "logits": logits}
        return logits
