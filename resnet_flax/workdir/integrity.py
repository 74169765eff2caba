"""Is a train state worth saving, and is a restored one what was saved?

``nonfinite``: the first arrays holding NaN/inf (parameters, BatchNorm statistics,
optimizer moments, EMA), since a diverged run's loss can stay finite for a while.
``digest``: SHA-256 over every array's path, dtype, shape and bytes, written with
the checkpoint, so random bytes that still decode as numbers are caught on restore.
``shape_difference``: whether a checkpoint's parameters are another model's.
"""

from __future__ import annotations

import hashlib

import jax
import numpy as np

DIGEST_BYTES = 32


def host_leaves(tree) -> list[tuple[str, np.ndarray]]:
    """(path, this process's copy as numpy) of each array, in a fixed order."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            leaf = leaf.addressable_data(0)  # Replicated: every process holds all of it.
        out.append((jax.tree_util.keystr(path), np.asarray(leaf)))
    return out


def nonfinite(leaves: list[tuple[str, np.ndarray]]) -> str | None:
    """``"non-finite values in <path> (and N more arrays)"``, or None if all are finite."""
    bad = [path for path, a in leaves
           if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all()]
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more arrays)" if len(bad) > 1 else ""
    return f"non-finite values in {bad[0]}{more}"


def digest(leaves: list[tuple[str, np.ndarray]]) -> np.ndarray:
    h = hashlib.sha256()
    for path, a in leaves:
        h.update(f"{path}|{a.dtype}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return np.frombuffer(h.digest(), np.uint8).copy()


def verify(tree, saved_digest) -> str | None:
    """Why a restored ``tree`` is not the state that was saved, or None."""
    leaves = host_leaves(tree)
    problem = nonfinite(leaves)
    if problem:
        return problem
    if saved_digest is not None and not np.array_equal(digest(leaves),
                                                       np.asarray(saved_digest)):
        return "its arrays do not match the digest written when it was saved"
    return None


def _shapes(tree) -> dict[str, tuple]:
    return {jax.tree_util.keystr(path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def shape_difference(saved, expected) -> str | None:
    """A short account of how two parameter trees differ in arrays or shapes, or None."""
    a, b = _shapes(saved), _shapes(expected)
    if a == b:
        return None
    only_saved, only_here = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    reshaped = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    parts = [f"{len(a)} parameter arrays there, {len(b)} in this model"]
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} of other shapes, e.g. params{k} {a[k]} there vs {b[k]}")
    if only_saved or only_here:
        example = (only_saved or only_here)[0]
        parts.append(f"{len(only_saved) + len(only_here)} in only one, e.g. params{example}")
    return "; ".join(parts)
