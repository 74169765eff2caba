"""Optax optimizer and learning-rate schedule, built from the config alone."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from resnet_flax.config import freeze_parts
from resnet_flax.models import part_of
from resnet_flax.train import callbacks

OPTIMIZERS = ("sgd", "adam", "adamw", "lars", "lamb")  # config.optimizer
SCHEDULES = ("constant", "warmup_cosine", "piecewise", "onecycle")  # config.schedule


def peak_lr(config) -> float:
    """``lr``, times ``batch_size / lr_base_batch`` when ``lr_base_batch`` is set (Goyal et
    al.'s linear scaling rule: lr 0.1 per 256 images)."""
    if config.lr_base_batch:
        return config.lr * config.batch_size / config.lr_base_batch
    return config.lr


def schedule(config, steps_per_epoch: int) -> optax.Schedule:
    """The learning rate per step: constant, piecewise, linear warmup + cosine, or onecycle.

    ``piecewise`` is He et al.'s recipe: the peak multiplied by ``lr_decay_factor`` at each
    epoch in ``lr_boundaries_epochs``. ``warmup_epochs`` ramps linearly from 0 in front of
    ``constant`` and ``piecewise`` too (Goyal et al.: 5 epochs, then x0.1 at 30/60/80, the
    boundaries counted from the start). ``onecycle`` is torch's ``OneCycleLR`` (cosine):
    from peak / ``onecycle_div_factor`` up to the peak at ``onecycle_pct_start`` of the
    run, then down to that start value / ``onecycle_final_div_factor``.
    """
    total = config.num_epochs * steps_per_epoch
    peak = peak_lr(config)
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup_steps=warmup, decay_steps=max(total, warmup + 1))
    if config.schedule == "onecycle":
        return optax.cosine_onecycle_schedule(
            max(total, 2), peak, pct_start=config.onecycle_pct_start,
            div_factor=config.onecycle_div_factor,
            final_div_factor=config.onecycle_final_div_factor)
    if config.schedule == "constant":
        base = optax.constant_schedule(peak)
    elif config.schedule == "piecewise":
        base = optax.piecewise_constant_schedule(
            peak, {int(e * steps_per_epoch): config.lr_decay_factor
                   for e in config.lr_boundaries_epochs})
    else:
        raise ValueError(f"config.schedule={config.schedule!r} is unknown")
    if warmup <= 0:
        return base
    ramp = optax.linear_schedule(0.0, peak, warmup)
    return lambda step: jnp.where(step < warmup, ramp(step), base(step))


def decay_mask(params):
    """True for conv/dense kernels, False for BN scales/offsets and biases (ndim 1)."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def optimizer(config, lr: optax.Schedule) -> optax.GradientTransformation:
    """``base_optimizer``, split into fine-tuning groups when the config asks for them,
    after global-norm clipping of the raw gradient (``grad_clip_norm``), followed by the
    plateau's lr scale when ReduceLROnPlateau or EarlyStopping is on (their counters are
    the last element of the optimizer state: ``callbacks``)."""
    tx = param_groups(config, base_optimizer(config, lr))
    if config.grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
    if callbacks.active(config):
        return optax.chain(tx, callbacks.transform(config))
    return tx


def param_groups(config, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` for the head; ``tx`` scaled by ``backbone_lr_multiplier`` for the stem and
    stages (a scaled update is a scaled lr, weight decay included, as in a torch param
    group); no update at all, weight decay included, for the parts in ``freeze``.
    Without either setting, ``tx`` itself (the optimizer state keeps its layout)."""
    frozen = set(freeze_parts(config))
    multiplier = config.backbone_lr_multiplier
    if not frozen and multiplier == 1.0:
        return tx
    backbone = tx if multiplier == 1.0 else optax.chain(tx, optax.scale(multiplier))

    def group(module_name: str) -> str:
        part = part_of(module_name)
        return "frozen" if part in frozen else "head" if part == "head" else "backbone"

    def labels(params):
        return {name: jax.tree.map(functools.partial(lambda g, _: g, group(name)), sub)
                for name, sub in params.items()}

    return optax.multi_transform(
        {"frozen": optax.set_to_zero(), "backbone": backbone, "head": tx}, labels)


def base_optimizer(config, lr: optax.Schedule) -> optax.GradientTransformation:
    """SGD (momentum, Nesterov), Adam, AdamW, LARS or LAMB with the config's weight decay.

    SGD and Adam take weight decay as an L2 term added to the gradient (what torch
    calls ``weight_decay``); AdamW and LAMB decouple it; LARS adds it before its
    layer-wise trust ratio (You et al. 2017). ``decay_bn_and_bias=False`` exempts
    one-dimensional parameters, for LARS from the trust ratio too (as large-batch
    ResNet-50 recipes do).
    """
    mask = None if config.decay_bn_and_bias else decay_mask
    if config.optimizer == "lars":
        return optax.lars(lr, weight_decay=config.weight_decay, weight_decay_mask=mask or True,
                          trust_coefficient=config.trust_coefficient,
                          trust_ratio_mask=mask or True, momentum=config.momentum,
                          nesterov=config.nesterov)
    if config.optimizer == "lamb":
        return optax.lamb(lr, b1=config.b1, b2=config.b2, eps=config.eps,
                          weight_decay=config.weight_decay, mask=mask)
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
