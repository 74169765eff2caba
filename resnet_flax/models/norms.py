"""Norm layers and the norm factory a model is handed.

A norm factory is a class (or a ``functools.partial`` of one) that every block calls as
``norm(name=..., scale_init=...)``; the network binds ``use_running_average`` and ``dtype``
once, and the parallel layer binds what spans devices (``spanning``). Every norm here takes
those same keywords, so blocks never ask which norm they hold.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.nn import initializers

from resnet_flax.models import cross_device
from resnet_flax.models.parts import Option, part_class

Dtype = Any
BN_CONVENTIONS = ("flax", "torch")

# torch's BatchNorm2d defaults (momentum 0.1 is Flax's 0.9); Flax's own default is 0.99.
BATCH_NORM = functools.partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)


class GroupNorm(nn.Module):
    """Group normalisation (Wu & He 2018) over ``min(norm_groups, channels)`` groups, with
    ``scale``/``bias`` named as BatchNorm's (so a model's parameters keep their names
    and counts). Per example: no running statistics, train and eval alike."""

    norm_groups: int = 32
    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32
    scale_init: Callable[..., Any] = initializers.ones
    use_running_average: bool | None = None  # Accepted as every norm's; no statistics.

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        c = x.shape[-1]
        g = min(self.norm_groups, c)
        if c % g:
            raise ValueError(f"GroupNorm: {c} channels do not split into {g} groups")
        scale = self.param("scale", self.scale_init, (c,), jnp.float32)
        bias = self.param("bias", initializers.zeros, (c,), jnp.float32)
        grouped = x.astype(jnp.float32).reshape(*x.shape[:-1], g, c // g)
        axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)  # Spatial and within-group.
        mean = grouped.mean(axes, keepdims=True)
        var = grouped.var(axes, keepdims=True)
        y = ((grouped - mean) * jax.lax.rsqrt(var + self.epsilon)).reshape(x.shape)
        return (y * scale + bias).astype(self.dtype)


class NoNorm(nn.Module):
    """The identity where a norm would be (``norm="none"``): no scale to start at zero."""

    dtype: Dtype = jnp.float32
    scale_init: Callable[..., Any] | None = None
    use_running_average: bool | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return x


# config.model_options.norm -> the norm class.
NORMS = {"batch": nn.BatchNorm, "group": GroupNorm, "none": NoNorm}
OPTIONS = (
    Option("norm", str, "`batch`; `group` (GroupNorm, equal to torch's); `none`. Parameters "
           "keep their names, so counts without BN statistics are unchanged", NORMS),
    Option("norm_groups", int, "GroupNorm's groups: 32 by default, or one per channel where "
           "there are fewer channels", low=1),
    Option("bn_momentum", float, "read in `bn_convention`", low=0.0, high=1.0),
    Option("bn_epsilon", float, "added to the variance (torch's and Flax's 1e-5, Keras' 1e-3)",
           low=0.0),
    Option("bn_batch", int, "BatchNorm's statistics per slice of this many images of a step's "
           "batch, as on one worker of a multi-GPU step (ghost BatchNorm; Wu & He 2018's "
           "fig. 1); unset: the whole batch", low=1),
    Option("bn_convention", str, "how `bn_momentum` reads: `flax` keeps running = m * running "
           "+ (1 - m) * batch (so torch's 0.1 is 0.9), `torch` the other way", BN_CONVENTIONS),
)
# Each norm option -> the field of a norm class it sets (the classes that have it).
NORM_FIELDS = {"bn_momentum": "momentum", "bn_epsilon": "epsilon", "norm_groups": "norm_groups"}


def flax_momentum(momentum: float, convention: str = "flax") -> float:
    """``momentum`` in Flax's convention, given in ``convention``.

    Flax (and Keras) keep ``running = m * running + (1 - m) * batch``; torch
    keeps ``running = (1 - m) * running + m * batch``. So torch's 0.1 is Flax's
    0.9, and Flax's/Keras' 0.99 is torch's 0.01. Epsilon means the same in all
    three (torch and Flax default to 1e-5, Keras to 1e-3).
    """
    return 1.0 - momentum if convention == "torch" else momentum


def with_options(norm, options: dict):
    """``norm`` with the resolved norm ``options`` set: ``norm`` (a class) picks the class,
    and ``bn_momentum`` (read in ``bn_convention``), ``bn_epsilon`` and ``norm_groups``
    carry to any class that has the field (momentum only means something to BatchNorm)."""
    settings = dict(getattr(norm, "keywords", {}))
    cls = options.get("norm", part_class(norm))
    if options.get("bn_batch"):
        if not issubclass(cls, nn.BatchNorm):
            raise ValueError(f"bn_batch={options['bn_batch']} sets BatchNorm's batch; "
                             f"{cls.__name__} has no batch statistics (use norm='batch')")
        cls, settings["group_images"] = cross_device.GhostBatchNorm, options["bn_batch"]
    for option, field in NORM_FIELDS.items():
        if option in options:
            settings[field] = options[option]
    if "bn_momentum" in options or "bn_convention" in options:
        settings["momentum"] = flax_momentum(settings.get("momentum", BATCH_NORM.keywords[
            "momentum"]), options.get("bn_convention", "flax"))
    fields = cls.__dataclass_fields__
    return functools.partial(cls, **{k: v for k, v in settings.items() if k in fields})


def spanning(norm, axis_name: str | None = None, ghost_groups: int = 0):
    """A batch-norm factory whose statistics span the pmap axis ``axis_name``, or with
    ``ghost_groups`` > 0 are taken per slice of the batch (``cross_device``); any other
    norm as it is (its statistics are per example)."""
    if not issubclass(part_class(norm), nn.BatchNorm):
        return norm
    if ghost_groups:
        settings = getattr(norm, "keywords", {})
        return functools.partial(cross_device.GhostBatchNorm, groups=ghost_groups, **{
            k: settings[k] for k in ("momentum", "epsilon") if k in settings})
    return functools.partial(norm, axis_name=axis_name)
