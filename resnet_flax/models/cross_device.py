"""The layers whose batch statistics or random draws span the batch, written so that
a ``jax.pmap`` step (each device holding a slice of the batch, ``axis_name`` bound)
computes what the same ``jax.jit`` step computes on the whole batch.

- ``Dropout``: ``nn.Dropout``'s mask, the same draws. Under pmap each device draws the
  mask of the global batch and keeps its own rows, so both modes drop the same units.
- ``GhostBatchNorm``: BatchNorm over ``groups`` equal slices of the batch, each
  normalised by its own statistics ("ghost" BatchNorm: per-device statistics in
  large-batch training, Hoffer et al. 2017), with the running statistics moved by the
  slices' mean. Under jit the slices are the devices' shards; under pmap each device
  is one slice and the step averages the running statistics over devices.

BatchNorm over the global batch needs nothing here: under jit XLA reduces over the
sharded batch, under pmap ``nn.BatchNorm(axis_name=...)`` averages over devices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.nn import initializers


class Dropout(nn.Module):
    """``nn.Dropout`` (the same key, shape and draw) whose mask spans the global batch."""

    rate: float
    broadcast_dims: Sequence[int] = ()
    deterministic: bool = True
    axis_name: str | None = None  # The pmap axis the batch is split over, if any.

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.rate == 0.0 or self.deterministic:
            return x
        if self.rate == 1.0:
            return jnp.zeros_like(x)
        keep = 1.0 - self.rate
        shape = [1 if d in self.broadcast_dims else n for d, n in enumerate(x.shape)]
        split = self.axis_name is not None and 0 not in self.broadcast_dims
        if split:
            shape[0] = x.shape[0] * jax.lax.axis_size(self.axis_name)
        mask = jax.random.bernoulli(self.make_rng("dropout"), p=keep, shape=shape)
        if split:  # This device's rows of the global batch's mask.
            start = jax.lax.axis_index(self.axis_name) * x.shape[0]
            mask = jax.lax.dynamic_slice_in_dim(mask, start, x.shape[0], 0)
        return jax.lax.select(jnp.broadcast_to(mask, x.shape), x / keep, jnp.zeros_like(x))


class GhostBatchNorm(nn.Module):
    """BatchNorm with each of ``groups`` equal slices of the batch normalised by its own
    statistics; variables named and shaped as ``nn.BatchNorm``'s (checkpoints and
    weights carry over). Running statistics in Flax's convention: ``running = m *
    running + (1 - m) * mean over slices`` of each slice's mean and biased variance."""

    groups: int = 1
    group_images: int = 0  # > 0: slices of this many images, however large the batch.
    use_running_average: bool = False
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Any = jnp.float32
    scale_init: Callable[..., Any] = initializers.ones

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        scale = self.param("scale", self.scale_init, (c,), jnp.float32)
        bias = self.param("bias", initializers.zeros, (c,), jnp.float32)
        if self.use_running_average:
            mean, var = ra_mean.value, ra_var.value
            y = (x.astype(jnp.float32) - mean) * jax.lax.rsqrt(var + self.epsilon)
        else:
            groups = x.shape[0] // self.group_images if self.group_images else self.groups
            if not groups or x.shape[0] % groups:
                raise ValueError(f"GhostBatchNorm: a batch of {x.shape[0]} does not split "
                                 f"into {self.group_images or self.groups} equal "
                                 f"{'images' if self.group_images else 'groups'}")
            g = x.astype(jnp.float32).reshape(groups, -1, *x.shape[1:])
            axes = tuple(range(1, g.ndim - 1))  # Per group: examples and spatial positions.
            mean = g.mean(axes, keepdims=True)
            # As nn.BatchNorm: E[x^2] - E[x]^2, clipped at 0.
            var = jnp.maximum(0.0, (g * g).mean(axes, keepdims=True) - mean * mean)
            y = ((g - mean) * jax.lax.rsqrt(var + self.epsilon)).reshape(x.shape)
            if not self.is_initializing():
                m = self.momentum
                ra_mean.value = m * ra_mean.value + (1 - m) * mean.reshape(-1, c).mean(0)
                ra_var.value = m * ra_var.value + (1 - m) * var.reshape(-1, c).mean(0)
        return (y * scale + bias).astype(self.dtype)
