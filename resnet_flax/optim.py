"""Optax optimizer and learning-rate schedule, built from the config alone."""

from __future__ import annotations

import jax
import optax


def schedule(config, steps_per_epoch: int) -> optax.Schedule:
    """The learning rate per step: constant, linear warmup + cosine, or piecewise.

    ``piecewise`` is He et al.'s recipe: ``lr`` multiplied by ``lr_decay_factor``
    at each epoch in ``lr_boundaries_epochs``.
    """
    total = config.num_epochs * steps_per_epoch
    if config.schedule == "constant":
        return optax.constant_schedule(config.lr)
    if config.schedule == "warmup_cosine":
        warmup = int(config.warmup_epochs * steps_per_epoch)
        return optax.warmup_cosine_decay_schedule(
            0.0, config.lr, warmup_steps=warmup, decay_steps=max(total, warmup + 1))
    if config.schedule == "piecewise":
        return optax.piecewise_constant_schedule(
            config.lr,
            {int(e * steps_per_epoch): config.lr_decay_factor
             for e in config.lr_boundaries_epochs})
    raise ValueError(f"config.schedule={config.schedule!r} is unknown")


def decay_mask(params):
    """True for conv/dense kernels, False for BN scales/offsets and biases (ndim 1)."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def optimizer(config, lr: optax.Schedule) -> optax.GradientTransformation:
    """SGD (momentum, Nesterov), Adam or AdamW with the config's weight decay.

    SGD and Adam take weight decay as an L2 term added to the gradient (what torch
    calls ``weight_decay``); AdamW decouples it. ``decay_bn_and_bias=False``
    exempts one-dimensional parameters.
    """
    mask = None if config.decay_bn_and_bias else decay_mask
    if config.optimizer == "adamw":
        return optax.adamw(lr, b1=config.b1, b2=config.b2, eps=config.eps,
                           weight_decay=config.weight_decay, mask=mask)
    if config.optimizer == "sgd":
        base = optax.sgd(lr, momentum=config.momentum or None, nesterov=config.nesterov)
    elif config.optimizer == "adam":
        base = optax.adam(lr, b1=config.b1, b2=config.b2, eps=config.eps)
    else:
        raise ValueError(f"config.optimizer={config.optimizer!r} is unknown")
    if not config.weight_decay:
        return base
    return optax.chain(optax.add_decayed_weights(config.weight_decay, mask), base)
