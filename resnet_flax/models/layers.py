"""Conv, pooling, initializer and activation helpers whose arithmetic matches PyTorch's.

torch pads a k x k convolution by k // 2 on every side; Flax's ``'SAME'`` pads
asymmetrically for even inputs with stride 2, which shifts every feature map by
a pixel and breaks weight import. Everything here pads explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax.nn import initializers

from resnet_flax.models import conv_impl, cross_device
from resnet_flax.models.parts import Option

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
# leaky_relu has torch's (and jax's) negative slope, 0.01; silu is also called swish.
ACTIVATIONS = {"relu": nn.relu, "leaky_relu": nn.leaky_relu, "silu": nn.silu}
OPTIONS = (
    Option("conv_init", str, "every convolution's initializer: `kaiming_fan_out` is torch's, "
           "`he_normal` Keras' truncated normal", CONV_INITS),
    Option("conv_bias", bool, "`True`: a zero-initialised bias on every convolution"),
    Option("activation", str, "every block's and the stem's activation (leaky_relu's slope "
           "0.01); SE's hidden ReLU stays", ACTIVATIONS),
)


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
    conv_bias: bool = False,
    dtype: Dtype = jnp.float32,
    conv_init: Initializer = TORCH_CONV_INIT,
    name: str | None = None,
) -> nn.Conv:
    """A conv padded like torch's ``Conv2d(k, stride, padding=k//2)``; bias-free unless
    ``conv_bias`` (torch's ``bias=True``, zero-initialised)."""
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(strides, strides),
        padding=torch_padding(kernel_size),
        feature_group_count=groups,
        use_bias=conv_bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=conv_init,
        conv_general_dilated=conv_impl.conv_general_dilated,
        name=name,
    )


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


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drops a whole residual branch per sample.

    Kept branches are scaled by ``1 / (1 - rate)`` (timm's ``DropPath``), so eval
    mode is the identity. ``dropout`` is the network's dropout factory (training or
    not, and the pmap axis, bound); it draws from the ``'dropout'`` rng stream.
    """

    rate: float
    dropout: Callable[..., nn.Module] = cross_device.Dropout

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.rate == 0.0:
            return x
        return self.dropout(self.rate, broadcast_dims=tuple(range(1, x.ndim)))(x)
