"""``config.model_options`` by the names users write, each declared by the part that owns
it (``OPTIONS`` in ``resnet``, ``stems``, ``shortcuts``, ``blocks``, ``layers`` and
``norms``), resolved and checked there once, and set on its owner: ``ResNet``'s fields,
the family's block (an option it lacks is refused by name: ``groups`` on a basic
block), the conv factory or the norm factory. A part may also be given as itself (a
class or ``partial``) from Python.
"""

from __future__ import annotations

import dataclasses
import functools

from resnet_flax.models import blocks, layers, norms, resnet, shortcuts, stems
from resnet_flax.models.parts import Option, part_class, part_settings
from resnet_flax.models.resnet import ResNet

# Every option, by the module that owns it: the one place each is declared.
OWNERS = {"ResNet": resnet.OPTIONS, "stems": stems.OPTIONS, "shortcuts": shortcuts.OPTIONS,
          "blocks": blocks.OPTIONS, "layers": layers.OPTIONS, "norms": norms.OPTIONS}
DECLARED: dict[str, Option] = {o.name: o for owned in OWNERS.values() for o in owned}
BLOCK_OPTIONS = tuple(o.name for o in blocks.OPTIONS if o.name != "preact")
CONV_OPTIONS = ("conv_init", "conv_bias")
NORM_OPTIONS = tuple(o.name for o in norms.OPTIONS)
NET_FIELDS = tuple(f.name for f in dataclasses.fields(ResNet) if f.name not in ("parent", "name"))


def _block(block, given: dict):
    """The family's block with its options bound, as its pre-activation twin if asked."""
    if "preact" in given:
        twins = blocks.PRE_ACTIVATION if given["preact"] else blocks.POST_ACTIVATION
        cls = part_class(block)
        if cls not in twins and cls not in twins.values():
            raise ValueError(f"preact: {cls.__name__} has no "
                             f"{'pre' if given['preact'] else 'post'}-activation twin")
        block = functools.partial(twins.get(cls, cls), **part_settings(block))
    bound = {o: given[o] for o in BLOCK_OPTIONS if o in given}
    fields = part_class(block).__dataclass_fields__
    for option, value in bound.items():
        if option not in fields:
            own = sorted(o for o in BLOCK_OPTIONS if o in fields)
            raise ValueError(f"{option}={value!r} is not an option of "
                             f"{part_class(block).__name__} (its options: {', '.join(own)})")
    return functools.partial(block, **bound) if bound else block


def apply(parts: dict, options: dict) -> dict:
    """``ResNet``'s fields: a family's ``parts`` with ``options`` (declared options by
    name, or ``ResNet``'s own fields) resolved and set on their owners."""
    unknown = sorted(set(options) - set(DECLARED) - set(NET_FIELDS))
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown}; valid options: "
                         f"{sorted(set(DECLARED) | set(NET_FIELDS))}")
    given = {k: DECLARED[k].resolve(v) if k in DECLARED else v for k, v in options.items()}
    parts = {**parts, **{k: v for k, v in given.items() if k in NET_FIELDS and k != "norm"}}
    if given.get("plain"):
        parts["shortcut"] = None
    parts["block"] = _block(parts.get("block", ResNet.block), given)
    conv = {o: given[o] for o in CONV_OPTIONS if o in given}
    if conv:
        parts["conv"] = functools.partial(parts.get("conv", ResNet.conv), **conv)
    norm = {o: given[o] for o in NORM_OPTIONS if o in given}
    if not isinstance(options.get("norm", ""), str):  # A norm part given as itself.
        parts["norm"] = norm.pop("norm")
    if norm:
        parts["norm"] = norms.with_options(parts.get("norm", ResNet.norm), norm)
    return parts


def _range(option: Option) -> str:
    if option.low is None:
        return ""
    return f">= {option.low:g}" if option.high is None else f"{option.low:g} to {option.high:g}"


def markdown_table() -> str:
    """docs/models.md's table of options, from their declarations."""
    lines = ["| option | type | values | what it does |", "|---|---|---|---|"]
    for option in DECLARED.values():
        values = ", ".join(f"`{v}`" for v in option.values) if option.values else _range(option)
        lines.append(f"| `{option.name}` | {option.kind.__name__} | {values} | "
                     f"{option.doc} |")
    return "\n".join(lines)
