"""Conv, norm and pooling helpers whose arithmetic matches PyTorch's.

torch pads a k x k convolution by k // 2 on every side; Flax's ``'SAME'`` pads
asymmetrically for even inputs with stride 2, which shifts every feature map by
a pixel and breaks weight import. Everything here pads explicitly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.nn import initializers

from resnet_flax.models import conv_impl, cross_device

Dtype = Any
Initializer = Callable[..., Any]

# torchvision's ResNet init: kaiming_normal_(mode="fan_out", nonlinearity="relu"),
# an untruncated normal with variance 2 / fan_out.
TORCH_CONV_INIT = initializers.variance_scaling(2.0, "fan_out", "normal")
CONV_INITS = {
    "kaiming_fan_out": TORCH_CONV_INIT,
    "flax_default": nn.linear.default_kernel_init,  # lecun_normal, fan_in
    "keras_default": initializers.glorot_uniform(),  # Keras Conv2D's glorot_uniform
    # Keras' he_normal: a normal truncated at 2 std, variance 2 / fan_in.
    "he_normal": initializers.he_normal(),
}
BN_CONVENTIONS = ("flax", "torch")
# leaky_relu has torch's (and jax's) negative slope, 0.01; silu is also called swish.
ACTIVATIONS = {"relu": nn.relu, "leaky_relu": nn.leaky_relu, "silu": nn.silu}


def conv_initializer(name: str) -> Initializer:
    """The conv kernel initializer called ``name`` (see ``CONV_INITS``)."""
    if name not in CONV_INITS:
        raise ValueError(f"conv_init={name!r} is not one of {sorted(CONV_INITS)}")
    return CONV_INITS[name]


def activation(name: str) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """The nonlinearity called ``name`` (see ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} is not one of {tuple(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def torch_padding(kernel_size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Symmetric padding torch uses for a ``kernel_size`` conv with ``padding=k//2``."""
    p = kernel_size // 2
    return ((p, p), (p, p))


def conv(
    features: int,
    kernel_size: int,
    strides: int = 1,
    *,
    groups: int = 1,
    use_bias: bool = False,
    dtype: Dtype = jnp.float32,
    kernel_init: Initializer = TORCH_CONV_INIT,
    name: str | None = None,
) -> nn.Conv:
    """A conv padded like torch's ``Conv2d(k, stride, padding=k//2)``; bias-free unless
    ``use_bias`` (torch's ``bias=True``, zero-initialised)."""
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(strides, strides),
        padding=torch_padding(kernel_size),
        feature_group_count=groups,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=kernel_init,
        conv_general_dilated=conv_impl.conv_general_dilated,
        name=name,
    )


def batch_norm(
    train: bool,
    *,
    momentum: float = 0.9,
    epsilon: float = 1e-5,
    dtype: Dtype = jnp.float32,
    zero_scale: bool = False,
    axis_name: str | None = None,
    name: str | None = None,
) -> nn.BatchNorm:
    """BatchNorm in Flax's momentum convention (running = m*running + (1-m)*batch).

    torch's ``momentum=0.1`` is Flax's ``momentum=0.9``; both default eps to 1e-5.
    ``zero_scale`` starts the scale at zero (the "zero-init last BN" trick).
    ``axis_name`` (a pmap axis) averages the statistics over its devices.
    """
    return nn.BatchNorm(
        use_running_average=not train,
        axis_name=axis_name,
        momentum=momentum,
        epsilon=epsilon,
        dtype=dtype,
        param_dtype=jnp.float32,
        scale_init=initializers.zeros if zero_scale else initializers.ones,
        name=name,
    )


def flax_momentum(momentum: float, convention: str = "flax") -> float:
    """``momentum`` in Flax's convention, given in ``convention``.

    Flax (and Keras) keep ``running = m * running + (1 - m) * batch``; torch
    keeps ``running = (1 - m) * running + m * batch``. So torch's 0.1 is Flax's
    0.9, and Flax's/Keras' 0.99 is torch's 0.01. Epsilon means the same in all
    three (torch and Flax default to 1e-5, Keras to 1e-3).
    """
    if convention not in BN_CONVENTIONS:
        raise ValueError(f"bn_convention={convention!r} is not one of {BN_CONVENTIONS}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"bn_momentum={momentum} must lie in [0, 1]")
    return 1.0 - momentum if convention == "torch" else momentum


def max_pool_3x3_s2(x: jnp.ndarray) -> jnp.ndarray:
    """torch's ``MaxPool2d(3, stride=2, padding=1)``: pads with -inf, symmetric."""
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


def avg_pool_2x2_ceil(x: jnp.ndarray) -> jnp.ndarray:
    """torch's ``AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)`` (ResNet-D).

    Odd sizes get a last, partial window averaged over its valid pixels only.
    """
    pad = ((0, x.shape[1] % 2), (0, x.shape[2] % 2))
    return nn.avg_pool(x, (2, 2), strides=(2, 2), padding=pad, count_include_pad=False)


def global_avg_pool(x: jnp.ndarray) -> jnp.ndarray:
    """Mean over the spatial axes of an NHWC tensor."""
    return jnp.mean(x, axis=(1, 2))


NORMS = ("batch", "group", "none")


class GroupNorm(nn.Module):
    """Group normalisation (Wu & He 2018) over ``min(groups, channels)`` groups, with
    ``scale``/``bias`` named as BatchNorm's (so a model's parameters keep their names
    and counts). Per example: no running statistics, train and eval alike."""

    groups: int = 32
    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32
    zero_scale: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        c = x.shape[-1]
        g = min(self.groups, c)
        if c % g:
            raise ValueError(f"GroupNorm: {c} channels do not split into {g} groups")
        scale = self.param("scale", initializers.zeros if self.zero_scale else initializers.ones,
                           (c,), jnp.float32)
        bias = self.param("bias", initializers.zeros, (c,), jnp.float32)
        grouped = x.astype(jnp.float32).reshape(*x.shape[:-1], g, c // g)
        axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)  # Spatial and within-group.
        mean = grouped.mean(axes, keepdims=True)
        var = grouped.var(axes, keepdims=True)
        y = ((grouped - mean) * jax.lax.rsqrt(var + self.epsilon)).reshape(x.shape)
        return (y * scale + bias).astype(self.dtype)


class NoNorm(nn.Module):
    """The identity where a norm would be (``norm="none"``)."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return x


def norm_factory(train: bool, momentum: float, epsilon: float, dtype: Dtype,
                 kind: str = "batch", groups: int = 32, axis_name: str | None = None,
                 ghost_groups: int = 0):
    """The model-wide norm, called as ``norm(name=..., zero_scale=...)`` by every block:
    ``batch_norm`` (``train`` decides batch or running statistics; statistics averaged
    over the pmap axis ``axis_name``, if given), or with ``ghost_groups`` > 0
    ``GhostBatchNorm`` over that many slices of the batch, ``GroupNorm`` or ``NoNorm``
    (which has no scale to start at zero)."""
    if kind == "batch" and ghost_groups:
        return functools.partial(cross_device.GhostBatchNorm, ghost_groups, not train,
                                 momentum, epsilon, dtype)
    if kind == "batch":
        return functools.partial(batch_norm, train, momentum=momentum, epsilon=epsilon,
                                 dtype=dtype, axis_name=axis_name)
    if kind == "group":
        return functools.partial(GroupNorm, groups, epsilon, dtype)
    if kind == "none":
        return lambda name=None, zero_scale=False: NoNorm(name=name)
    raise ValueError(f"norm={kind!r} is not one of {NORMS}")


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drops a whole residual branch per sample.

    Kept branches are scaled by ``1 / (1 - rate)`` (timm's ``DropPath``), so eval
    mode is the identity. Draws from the ``'dropout'`` rng stream.
    """

    rate: float
    deterministic: bool = True
    axis_name: str | None = None  # The pmap axis (cross_device.Dropout).

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.rate == 0.0 or self.deterministic:
            return x
        return cross_device.Dropout(self.rate, broadcast_dims=tuple(range(1, x.ndim)),
                                    deterministic=False, axis_name=self.axis_name)(x)
