"""What the network and its registry need to know of a part they were handed: its class
(a part is a class or a ``functools.partial`` of one) and the settings bound to it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

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
