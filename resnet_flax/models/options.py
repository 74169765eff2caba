"""``config.model_options`` by the names users write, each set on the part that owns it.

A name with a fixed set of values picks a part from its owner's table (``CHOICES``); a
block option is bound to the family's block and must be one of that block's fields (so
``groups`` on a basic block is refused by the block, not by a rule here); norm and conv
options are bound to those factories; the rest are ``ResNet``'s own fields. A part may
also be given as itself (a class or ``partial``) from Python.
"""

from __future__ import annotations

import dataclasses
import functools

from resnet_flax.models import layers, norms
from resnet_flax.models.blocks import POST_ACTIVATION, PRE_ACTIVATION
from resnet_flax.models.parts import part_class, part_settings
from resnet_flax.models.resnet import DTYPES, ResNet
from resnet_flax.models.shortcuts import SHORTCUTS
from resnet_flax.models.stems import STEMS

# Each option with a fixed set of values, and the table its values name.
CHOICES = {"dtype": DTYPES, "shortcut": SHORTCUTS, "bn_convention": norms.BN_CONVENTIONS,
           "conv_init": layers.CONV_INITS, "stem": STEMS, "activation": layers.ACTIVATIONS,
           "norm": norms.NORMS}
# Option -> the field of the family's block it sets.
BLOCK_OPTIONS = {"zero_init_residual": "zero_init_residual", "se_reduction": "se_reduction",
                 "block_dropout": "dropout_rate", "groups": "groups", "base_width": "base_width"}
NORM_OPTIONS = ("norm", "norm_groups", "bn_momentum", "bn_epsilon", "bn_convention")
CONV_OPTIONS = {"conv_init": "kernel_init", "conv_bias": "use_bias"}
SWITCHES = ("plain", "preact", "activation")
NET_FIELDS = tuple(f.name for f in dataclasses.fields(ResNet) if f.name not in ("parent", "name"))
OPTIONS = (*NET_FIELDS, *BLOCK_OPTIONS, *NORM_OPTIONS, *CONV_OPTIONS, *SWITCHES)


def _choose(option: str, value):
    """The part (or value) a name in ``CHOICES[option]`` stands for; a part as itself."""
    table = CHOICES[option]
    if not isinstance(value, str):
        return value
    if value not in table:
        raise ValueError(f"{option}={value!r} is not one of {tuple(table)}")
    return table[value] if isinstance(table, dict) else value


def _block(block, options: dict):
    """The family's block with its options bound, as its pre-activation twin if asked."""
    if "preact" in options:
        twins = PRE_ACTIVATION if options["preact"] else POST_ACTIVATION
        cls = part_class(block)
        if cls not in twins and cls not in twins.values():
            raise ValueError(f"preact: {cls.__name__} has no "
                             f"{'pre' if options['preact'] else 'post'}-activation twin")
        block = functools.partial(twins.get(cls, cls), **part_settings(block))
    given = {field: options[option] for option, field in BLOCK_OPTIONS.items() if option in options}
    fields = part_class(block).__dataclass_fields__
    for field, value in given.items():
        if field not in fields:
            option = next(o for o, f in BLOCK_OPTIONS.items() if f == field)
            own = sorted(o for o, f in BLOCK_OPTIONS.items() if f in fields)
            raise ValueError(f"{option}={value!r} is not an option of "
                             f"{part_class(block).__name__} (its options: {', '.join(own)})")
    return functools.partial(block, **given) if given else block


def _conv(conv, options: dict):
    given = {}
    if "conv_init" in options:
        given["kernel_init"] = _choose("conv_init", options["conv_init"])
    if "conv_bias" in options:
        given["use_bias"] = options["conv_bias"]
    return functools.partial(conv, **given) if given else conv


def apply(parts: dict, options: dict) -> dict:
    """``ResNet``'s fields: a family's ``parts`` with ``options`` set on their owners."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown}; valid options: {sorted(OPTIONS)}")
    parts = dict(parts)
    for option in ("dtype", "shortcut", "stem"):
        if option in options:
            _choose(option, options[option])
    parts.update({k: v for k, v in options.items() if k in NET_FIELDS and k != "norm"})
    for option in ("shortcut", "stem"):
        if isinstance(parts.get(option), str):
            parts[option] = _choose(option, parts[option])
    if options.get("plain"):
        parts["shortcut"] = None
    if "activation" in options:
        parts["act"] = _choose("activation", options["activation"])
    parts["block"] = _block(parts.get("block", ResNet.block), options)
    parts["conv"] = _conv(parts.get("conv", ResNet.conv), options)
    if any(o in options for o in NORM_OPTIONS):
        if isinstance(options.get("norm"), str):
            _choose("norm", options["norm"])
        norm_options = {o: options[o] for o in NORM_OPTIONS if o in options}
        if not isinstance(norm_options.get("norm", ""), str):
            parts["norm"] = norm_options.pop("norm")
        parts["norm"] = norms.with_options(parts.get("norm", ResNet.norm), norm_options)
    return parts
