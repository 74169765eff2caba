"""FLOPs of a train step: XLA's cost analysis where the backend gives one, else a count of
the convolutions and matrix products in the step's jaxpr (XLA:GPU's lowered programs
report no cost analysis, so a GPU's MFU would otherwise be missing)."""

from __future__ import annotations

import math

# Primitives whose sub-programs run once per call; scan's run ``length`` times.
_ONCE = ("jaxpr", "call_jaxpr", "fun_jaxpr")


def lowered_flops(lowered) -> float | None:
    """FLOPs of a lowered program, before SPMD partitioning: the whole batch's."""
    try:
        cost = lowered.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it.
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return float(cost["flops"]) if cost and "flops" in cost else None


def jaxpr_flops(fn, *args) -> float | None:
    """2 x the multiply-adds of every convolution and dot product ``fn(*args)`` traces."""
    import jax

    try:
        closed = jax.make_jaxpr(fn)(*args)
    except Exception:  # noqa: BLE001 - a step that cannot be traced outside its mesh.
        return None
    return float(_count(closed.jaxpr))


def step_flops(fn, *args, lowered=None) -> tuple[float | None, str | None]:
    """(FLOPs, where they come from) of one call of ``fn(*args)``: XLA's cost analysis of
    ``lowered`` (or of ``fn`` lowered unpartitioned), else the jaxpr count."""
    import jax

    if lowered is None:
        try:
            lowered = jax.jit(fn).lower(*args)
        except Exception:  # noqa: BLE001
            lowered = None
    flops = lowered_flops(lowered) if lowered is not None else None
    if flops:
        return flops, "XLA cost analysis"
    flops = jaxpr_flops(fn, *args)
    return (flops, "convolutions and dot products of the jaxpr") if flops else (None, None)


def _count(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "dot_general":
            total += _dot_flops(eqn)
        total += _nested(eqn)
    return total


def _nested(eqn) -> int:
    params = eqn.params
    if eqn.primitive.name == "scan":
        return params["length"] * _count(params["jaxpr"].jaxpr)
    if eqn.primitive.name == "cond":  # One branch runs: count the dearest.
        return max(_count(b.jaxpr) for b in params["branches"])
    total = 0
    for key in _ONCE:
        sub = params.get(key)
        if sub is not None and hasattr(sub, "eqns"):
            total += _count(sub)
        elif sub is not None and hasattr(sub, "jaxpr"):
            total += _count(sub.jaxpr)
    return total


def _conv_flops(eqn) -> int:
    out = eqn.outvars[0].aval.shape
    rhs = eqn.invars[1].aval.shape
    out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
    # Each output element sums over the kernel's window x its input features per group;
    # a strided conv's input gradient dilates its input with zeros, which do no work.
    dilated = math.prod(eqn.params.get("lhs_dilation") or (1,))
    return 2 * math.prod(out) * (math.prod(rhs) // out_features) // dilated


def _dot_flops(eqn) -> int:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    return 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
