"""What the network and its registry need to know of a part they were handed: its class
(a part is a class or a ``functools.partial`` of one) and the settings bound to it; and
how a part declares the ``config.model_options`` it owns (``Option``)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

from resnet_flax.suggest import closest

# A part: a module class, a ``functools.partial`` of one, or a function building one.
Factory = Callable[..., Any]


def part_class(part: Any) -> Any:
    """The class (or function) under any ``functools.partial`` of it."""
    while isinstance(part, functools.partial):
        part = part.func
    return part


def part_settings(part: Any) -> dict:
    """The keywords bound to ``part`` by ``functools.partial`` (nested ones flattened)."""
    return dict(part.keywords) if isinstance(part, functools.partial) else {}


class BadOption(ValueError):
    """A model option's value that its table or range refuses; ``line`` says so without
    the model's name, for a caller that names the setting instead."""

    def __init__(self, option: str, line: str, context: str = ""):
        super().__init__(f"{context}{line}")
        self.option, self.line = option, line


@dataclasses.dataclass(frozen=True)
class Option:
    """A ``config.model_options`` field, declared once by the part that owns it: its name
    (the owner's attribute takes it too), its type, what it does (docs/models.md's
    table is made from these), and what is valid: a table of names (``values``; the
    value is then resolved to the table's entry, and a part given as itself passes) or a
    range of numbers (``low``/``high``, inclusive)."""

    name: str
    kind: type
    doc: str
    values: Mapping[str, Any] | tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None

    def resolve(self, value: Any) -> Any:
        """What the model takes for ``value``; ``BadOption`` for one that is not valid."""
        if self.values is not None:
            if not isinstance(value, str):
                return value
            names = tuple(self.values)
            if value not in names:
                raise BadOption(self.name, f"{self.name}={value!r} is not one of {names}"
                                           f"{closest(value, names)}")
            return self.values[value] if isinstance(self.values, Mapping) else value
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            valid = f">= {self.low}" if self.high is None else f"in [{self.low}, {self.high}]"
            raise BadOption(self.name, f"{self.name}={value!r} must be {valid}")
        return value
