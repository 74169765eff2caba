"""``did you mean`` hints for a mistyped name: one helper for every error message."""

from __future__ import annotations

import difflib


def closest(name: str, candidates, n: int = 3) -> str:
    """``"; did you mean 'x' or 'y'?"`` for the ``n`` nearest candidates, or ``""``."""
    near = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
