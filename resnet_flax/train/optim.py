"""Optax optimizer and learning-rate schedule, built from the config alone."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from resnet_flax.config import ConfigError, freeze_parts
from resnet_flax.suggest import closest
from resnet_flax.train import callbacks

# config.optimizer is any optax optimizer by name (``optax_optimizers()``). These five
# also read the config's own fields, each the same-named optax keyword (the names and
# fields recipes used before any optax name served); optimizer_options adds the rest.
CONFIG_FIELDS = {
    "sgd": ("momentum", "nesterov"),
    "adam": ("b1", "b2", "eps"),
    "adamw": ("b1", "b2", "eps"),
    "lars": ("trust_coefficient", "momentum", "nesterov"),
    "lamb": ("b1", "b2", "eps"),
}
# Optax optimizers training cannot use, and why: its update is given the gradient alone,
# and its learning rate is always a schedule.
UNUSABLE = {
    "lbfgs": "needs the loss itself in each update (optax's extra arguments)",
    "optimistic_adam": "takes a fixed learning rate, not the schedule (optimistic_adam_v2 "
                       "follows one)",
    "rprop": "takes a fixed learning rate, not the schedule",
    "sm3": "takes a fixed learning rate, not the schedule",
}
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
    epoch in ``lr_boundaries_epochs``. ``warmup_epochs`` ramps linearly from
    ``warmup_start_factor`` x the peak (0 unless set; torchvision's V2 recipe: 0.01), in
    front of ``constant`` and ``piecewise`` too (Goyal et al.: 5 epochs, then x0.1 at
    30/60/80, the boundaries counted from the start). ``onecycle`` is torch's ``OneCycleLR``:
    cosine, from peak / ``onecycle_div_factor`` up to the peak at ``onecycle_pct_start`` of the
    run, then down to that start value / ``onecycle_final_div_factor``.
    """
    total = config.num_epochs * steps_per_epoch
    peak = peak_lr(config)
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            config.warmup_start_factor * peak, peak, warmup_steps=warmup,
            decay_steps=max(total, warmup + 1))
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
    ramp = optax.linear_schedule(config.warmup_start_factor * peak, peak, warmup)
    return lambda step: jnp.where(step < warmup, ramp(step), base(step))


def decay_mask(params):
    """True for conv/dense kernels, False for BN scales/offsets and biases (ndim 1)."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def optimizer(config, lr: optax.Schedule,
              part_of: Callable[[str], str] | None = None) -> optax.GradientTransformation:
    """``base_optimizer``, split into fine-tuning groups when the config asks for them,
    after global-norm clipping of the raw gradient (``grad_clip_norm``), followed by the
    plateau's lr scale when ReduceLROnPlateau or EarlyStopping is on (their counters are
    the last element of the optimizer state: ``callbacks``). ``part_of``: the model's
    map from a top-level layer to its part (``ResNet.part_of``), which the groups need."""
    tx = param_groups(config, base_optimizer(config, lr), part_of)
    if config.grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
    if callbacks.active(config):
        return optax.chain(tx, callbacks.transform(config))
    return tx


def param_groups(config, tx: optax.GradientTransformation,
                 part_of: Callable[[str], str] | None) -> optax.GradientTransformation:
    """``tx`` for the head; ``tx`` scaled by ``backbone_lr_multiplier`` for the stem and
    stages (a scaled update is a scaled lr, weight decay included, as in a torch param
    group); no update at all, weight decay included, for the parts in ``freeze``.
    Without either setting, ``tx`` itself (the optimizer state keeps its layout)."""
    frozen = set(freeze_parts(config))
    multiplier = config.backbone_lr_multiplier
    if not frozen and multiplier == 1.0:
        return tx
    if part_of is None:
        raise ValueError("freeze and backbone_lr_multiplier need the model's part_of")
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
    """``optax.<config.optimizer>(lr, ...)``: the config's own fields for the five in
    ``CONFIG_FIELDS``, then ``optimizer_options`` as further keywords, with the config's
    weight decay.

    ``weight_decay`` goes to optax's own ``weight_decay`` keyword where the optimizer has
    one (decoupled in AdamW, LAMB, Lion; before LARS's layer-wise trust ratio, You et al.
    2017), else it is an L2 term added to the gradient (what torch calls ``weight_decay``:
    SGD, Adam, RMSprop). ``decay_bn_and_bias=False`` exempts one-dimensional parameters,
    for LARS from the trust ratio too (as large-batch ResNet-50 recipes do).
    """
    make = optax_optimizer(config.optimizer)
    kwargs = optimizer_kwargs(config)
    mask = None if config.decay_bn_and_bias else decay_mask
    parameters = inspect.signature(make).parameters
    if "weight_decay" not in parameters:
        tx = make(lr, **kwargs)
        if not config.weight_decay:
            return tx
        return optax.chain(optax.add_decayed_weights(config.weight_decay, mask), tx)
    kwargs["weight_decay"] = config.weight_decay
    if config.optimizer == "lars":  # Its masks default to True (every leaf), not None.
        kwargs.update(weight_decay_mask=mask or True, trust_ratio_mask=mask or True)
    elif mask is not None and "mask" in parameters:  # None: optax's own default.
        kwargs["mask"] = mask
    return make(lr, **kwargs)


def optax_optimizer(name: str):
    """``optax.<name>``, the function that makes that optimizer, or ``ConfigError``."""
    if name not in optax_optimizers():
        raise ConfigError(_not_an_optimizer(name))
    return getattr(optax, name)


@functools.cache
def optax_optimizers() -> tuple[str, ...]:
    """The names of optax's optimizers: its functions that take a ``learning_rate`` and
    return a ``GradientTransformation`` (not ``chain``, not the ``scale_by_*`` parts)."""
    return tuple(sorted(name for name in dir(optax) if _is_optimizer(name)))


def _is_optimizer(name: str) -> bool:
    make = getattr(optax, name)
    if name.startswith(("_", "scale_by_")) or name in UNUSABLE:
        return False
    if not (inspect.isfunction(make) or isinstance(make, functools.partial)):  # nadam: adam's.
        return False
    try:
        signature = inspect.signature(make, eval_str=True)
    except (NameError, TypeError, ValueError):  # An annotation that does not resolve.
        return False
    returns = signature.return_annotation
    return ("learning_rate" in signature.parameters and isinstance(returns, type)
            and issubclass(returns, optax.GradientTransformation))


def _not_an_optimizer(name: str) -> str:
    if name in UNUSABLE:
        return f"config.optimizer={name!r}: optax.{name} {UNUSABLE[name]}"
    names = optax_optimizers()
    hint = closest(name, names) or f"; optax's are {', '.join(names)}"
    return f"config.optimizer={name!r} is not an optax optimizer{hint}"


def optimizer_kwargs(config) -> dict:
    """The keywords for ``optax.<config.optimizer>`` besides the learning rate and weight
    decay: its ``CONFIG_FIELDS``, then ``optimizer_options``; ``ConfigError`` for an
    option it does not take or one a config field sets."""
    name = config.optimizer
    parameters = inspect.signature(optax_optimizer(name)).parameters
    kwargs = {field: config[field] for field in CONFIG_FIELDS.get(name, ())}
    if name == "sgd":  # 0 is no momentum: optax's None (no trace in the state).
        kwargs["momentum"] = config.momentum or None
    owned = _owned_by_fields(config, parameters, kwargs)
    valid = [p for p, v in parameters.items() if p not in owned and v.kind is not v.VAR_KEYWORD]
    open_ended = any(v.kind is v.VAR_KEYWORD for v in parameters.values())
    options = config.optimizer_options.to_dict()
    for key in options:
        where = f"config.optimizer_options.{key}"
        if key in owned:
            raise ConfigError(f"{where}: optax.{name}'s {key} comes from config.{owned[key]}")
        if key not in parameters and not open_ended:
            raise ConfigError(f"{where}: optax.{name} takes no {key!r}{closest(key, valid)} "
                              f"(its options: {', '.join(valid) or 'none'})")
    return {**kwargs, **options}


def _owned_by_fields(config, parameters, kwargs: dict) -> dict[str, str]:
    """{optax keyword: the config field that sets it} for the keywords options may not set;
    ``ConfigError`` where ``decay_bn_and_bias=False`` finds no mask keyword to set."""
    owned = {"learning_rate": "lr", **{keyword: keyword for keyword in kwargs}}
    if "weight_decay" not in parameters:  # The L2 term goes in front: no keyword to own.
        return owned
    masks = (("weight_decay_mask", "trust_ratio_mask") if config.optimizer == "lars"
             else ("mask",))
    if config.weight_decay and not config.decay_bn_and_bias and not set(masks) <= set(parameters):
        raise ConfigError(f"config.decay_bn_and_bias=False: optax.{config.optimizer} has no "
                          "mask for its weight decay; set decay_bn_and_bias=True")
    return {**owned, "weight_decay": "weight_decay",
            **{m: "decay_bn_and_bias" for m in masks if m in parameters}}
