"""One ``ResNet`` module; every family is a ``functools.partial`` of it (see registry)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.nn import initializers

from resnet_flax.models import cross_device, layers
from resnet_flax.models.blocks import BasicBlock, Bottleneck

STEMS = ("imagenet", "deep", "cifar")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}

# torch's nn.Linear weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
TORCH_DENSE_INIT = initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def part_of(module_name: str) -> str:
    """The part a top-level module of ``ResNet`` belongs to: ``stem``, ``stage<i>`` (its
    blocks ``layer<i>_<j>``) or ``head`` (the classifier and a pre-activation net's
    final BN)."""
    if module_name.startswith("layer"):
        return "stage" + module_name[len("layer"):].split("_")[0]
    if module_name.startswith(("conv1", "bn1")):
        return "stem"
    return "head"


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
      conv_init: "kaiming_fan_out" (torch), "flax_default", "keras_default" (glorot
        uniform) or "he_normal" (Keras').
      bn_momentum / bn_epsilon: BN running-average momentum and epsilon.
      bn_convention: how ``bn_momentum`` reads: "flax" (running = m * running +
        (1 - m) * batch; torch's 0.1 is 0.9 here) or "torch" (0.1 means 0.1).
      dtype: compute dtype name; parameters are always float32.
      groups / base_width: the Bottleneck 3x3's groups and width per group at 64
        planes (torchvision's ``groups`` / ``width_per_group``: ResNeXt, wide nets).
      conv_bias: give every conv a (zero-initialised) bias.
      activation: "relu", "leaky_relu" (slope 0.01) or "silu".
      block_kwargs: extra fields for every block (for block classes of your own).
      norm: "batch" (BatchNorm), "group" (GroupNorm, ``norm_groups`` groups or one per
        channel where there are fewer channels; Wu & He 2018) or "none" (identity). The
        variables keep their names (``bn1``, ...): ``bn_momentum`` and
        ``bn_convention`` only mean something for "batch", ``bn_epsilon`` for both.
      frozen: parts (``stem``, ``stage1``..) whose BatchNorms use their running
        statistics even in training and leave them unchanged (fine-tuning with a
        frozen backbone part); where the stem and the first stages are all frozen, no
        gradient flows back into them.
      preact: pre-activation blocks (He et al. 2016): the stem loses its BN-ReLU
        and a final BN-ReLU ("bn_final") precedes the pooling.
      se_reduction: squeeze-excitation in every block with this reduction (0: none).
      stochastic_depth: drop rate of the last block; block l of L drops its branch
        with rate ``stochastic_depth * l / L`` (Huang et al.'s linear rule).
        Needs a ``'dropout'`` rng in training.
      block_dropout: dropout between the convs of each block (Wide ResNet).
      width_multiplier: scales the stem and every stage width.
      axis_name: the pmap axis a train step's batch is split over (set by
        ``parallel``): BatchNorm averages its statistics over it, dropout draws the
        global batch's mask (``cross_device``), so pmap computes what jit does.
      bn_ghost_groups: > 0: every BatchNorm normalises this many equal slices of the
        batch by their own statistics (per-device "ghost" BatchNorm; ``cross_device``).
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
    groups: int = 1
    base_width: int = 64
    conv_bias: bool = False
    activation: str = "relu"
    frozen: Sequence[str] = ()
    norm: str = "batch"
    norm_groups: int = 32
    axis_name: str | None = None
    bn_ghost_groups: int = 0

    def widths(self) -> tuple[int, list[int]]:
        """(stem width, stage widths) after ``width_multiplier``."""
        scale = lambda w: max(1, int(round(w * self.width_multiplier)))  # noqa: E731
        return scale(self.stem_width), [scale(w) for w in self.stage_widths]

    def parts(self) -> tuple[str, ...]:
        """The parts ``frozen`` may name, input to output (the head is never frozen)."""
        return ("stem", *(f"stage{i + 1}" for i in range(len(self.stage_sizes))))

    def _stop_gradient_after(self, part: str, x):
        """``x`` with no gradient when ``part`` and every part before it are frozen."""
        parts = self.parts()
        if all(p in self.frozen for p in parts[:parts.index(part) + 1]):
            return jax.lax.stop_gradient(x)
        return x

    def _stem(self, x, conv, norm, act):
        """The stem's convs (BN-activation after each unless pre-activation) and max-pool."""
        stem_width, _ = self.widths()
        if self.stem == "deep":
            # timm's conv1 = Sequential(conv, bn, relu, conv, bn, relu, conv); then bn1.
            x = act(norm(name="bn1_0")(conv(stem_width, 3, 2, "conv1_0")(x)))
            x = act(norm(name="bn1_1")(conv(stem_width, 3, 1, "conv1_1")(x)))
            x = conv(2 * stem_width, 3, 1, "conv1_2")(x)
        else:
            k, s = (3, 1) if self.stem == "cifar" else (7, 2)
            x = conv(stem_width, k, s, "conv1")(x)
        if not self.preact:
            x = act(norm(name="bn1")(x))
        return x if self.stem == "cifar" else layers.max_pool_3x3_s2(x)

    def check_options(self) -> None:
        """Raises ``ValueError`` on fields no model can be built from (``create`` calls it)."""
        if self.stem not in STEMS:
            raise ValueError(f"stem={self.stem!r} is not one of {STEMS}")
        if len(self.stage_sizes) != len(self.stage_widths):
            raise ValueError(
                f"stage_sizes {tuple(self.stage_sizes)} and stage_widths "
                f"{tuple(self.stage_widths)} must have the same length")
        if self.plain and self.stochastic_depth:
            raise ValueError("stochastic_depth drops residual branches; a plain net has none")
        if self.groups < 1 or self.base_width < 1:
            raise ValueError(f"groups={self.groups} and base_width={self.base_width} "
                             "must be >= 1")
        if self.norm not in layers.NORMS:
            raise ValueError(f"norm={self.norm!r} is not one of {layers.NORMS}")
        if self.norm == "none" and self.zero_init_residual and not self.preact:
            raise ValueError("zero_init_residual zeroes each block's last norm scale, and "
                             "norm='none' has none")
        if self.norm_groups < 1:
            raise ValueError(f"norm_groups={self.norm_groups} must be >= 1")
        unknown = sorted(set(self.frozen) - set(self.parts()))
        if unknown:
            raise ValueError(f"cannot freeze {unknown}: the parts are {self.parts()}")
        if not issubclass(self.block_cls, Bottleneck) and (self.groups, self.base_width) != (
                1, 64):
            raise ValueError(f"basic blocks take only groups=1 and base_width=64 (got "
                             f"{self.groups}, {self.base_width}; as in torchvision); groups "
                             "and base_width need a bottleneck model")

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool, return_features: bool = False):
        """Logits for NHWC images ``x``; with ``return_features`` a dict of
        ``stem``, ``stage1``..``stageN``, ``pooled`` and ``logits``."""
        self.check_options()
        dtype = compute_dtype(self.dtype)
        kernel_init = layers.conv_initializer(self.conv_init)
        act = layers.activation(self.activation)
        momentum = layers.flax_momentum(self.bn_momentum, self.bn_convention)
        norm = functools.partial(layers.norm_factory, momentum=momentum,
                                 epsilon=self.bn_epsilon, dtype=dtype, kind=self.norm,
                                 groups=self.norm_groups, axis_name=self.axis_name,
                                 ghost_groups=self.bn_ghost_groups)
        norms = {part: norm(train and part not in self.frozen) for part in self.parts()}
        conv = lambda f, k, s, name: layers.conv(  # noqa: E731
            f, k, s, dtype=dtype, kernel_init=kernel_init, use_bias=self.conv_bias, name=name)
        _, stage_widths = self.widths()
        x = self._stem(jnp.asarray(x, dtype), conv, norms["stem"], act)
        x = self._stop_gradient_after("stem", x)
        features = {"stem": x}

        total, index = sum(self.stage_sizes), 0
        for i, (num_blocks, width) in enumerate(zip(self.stage_sizes, stage_widths, strict=True)):
            for j in range(num_blocks):
                index += 1
                x = self.block_cls(
                    features=width,
                    strides=2 if (i > 0 and j == 0) else 1,
                    norm=norms[f"stage{i + 1}"],
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
                    act=act,
                    conv_bias=self.conv_bias,
                    axis_name=self.axis_name,
                    name=f"layer{i + 1}_{j}",
                    **{"groups": self.groups, "base_width": self.base_width,
                       **(self.block_kwargs or {})},
                )(x)
            x = features[f"stage{i + 1}"] = self._stop_gradient_after(f"stage{i + 1}", x)
        if self.preact:
            x = act(norm(train)(name="bn_final")(x))

        x = layers.global_avg_pool(x)
        features["pooled"] = x
        x = cross_device.Dropout(self.dropout_rate, deterministic=not train,
                                 axis_name=self.axis_name)(x)
        x = nn.Dense(self.num_classes, dtype=dtype, param_dtype=jnp.float32,
                     kernel_init=TORCH_DENSE_INIT, name="fc")(x)
        logits = jnp.asarray(x, jnp.float32)
        if return_features:
            return {**features, "logits": logits}
        return logits
