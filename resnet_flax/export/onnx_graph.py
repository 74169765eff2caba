"""ONNX from the model's own jaxpr: the exported function traced once, each JAX primitive
it uses written as the ONNX operators that compute the same thing (opset ``OPSET``), with
the batch dimension symbolic. A converter from the package registry (jax2onnx) pins an
older Orbax than training needs and pools the padded max-pool wrongly; the ResNet
families use a few dozen primitives, so they are converted here and checked by
onnxruntime at two batch sizes. A primitive outside this set is one ``ExportError``.

Layout: the graph keeps JAX's NHWC; a convolution or pooling transposes to ONNX's NCHW
and back (onnxruntime's optimizer cancels the pairs). Whatever depends only on constants
(the weights, a resize's coefficients) is computed at conversion and stored.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import onnx
from jax.extend import core
from onnx import TensorProto, helper, numpy_helper

from resnet_flax.export.source import ExportError

OPSET = 17
_ELEMENTWISE = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "max": "Max",
                "min": "Min", "ge": "GreaterOrEqual", "gt": "Greater", "le": "LessOrEqual",
                "lt": "Less", "eq": "Equal", "logistic": "Sigmoid", "exp": "Exp",
                "log": "Log", "tanh": "Tanh", "neg": "Neg", "abs": "Abs", "sqrt": "Sqrt",
                "round": "Round", "stop_gradient": "Identity", "erf": "Erf"}
_CALLS = {"jit": "jaxpr", "custom_jvp_call": "call_jaxpr", "pjit": "jaxpr"}


def _onnx_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


class Graph:
    """The ONNX nodes and initializers of a jaxpr traced at batch size ``batch``."""

    def __init__(self, batch: int):
        self.batch, self.nodes, self.initializers = batch, [], []
        self._ids = itertools.count()

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self._ids)}"

    def const(self, array, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, np.int64), "ints")

    def node(self, op: str, inputs: list[str], **attributes) -> str:
        out = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attributes))
        return out

    def batch_free(self, shape) -> list[int]:
        """``shape`` with a leading batch dimension as 0 (Reshape's "copy this one")."""
        shape = list(shape)
        if shape and shape[0] == self.batch:
            shape[0] = 0
        if self.batch in shape[1:]:
            raise ExportError(f"ONNX: a shape {tuple(shape)} moves the batch dimension")
        return shape


# Each converter: (graph, eqn, input names) -> output name.
def _conv(g: Graph, eqn, x, w) -> str:
    p = eqn.params
    lhs, rhs, out = p["dimension_numbers"]
    if any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
        raise ExportError("ONNX: a transposed or batch-grouped convolution")
    pads = [lo for lo, _ in p["padding"]] + [hi for _, hi in p["padding"]]
    y = g.node("Conv", [g.node("Transpose", [x], perm=list(lhs)), w],
               strides=list(p["window_strides"]), pads=pads,
               dilations=list(p["rhs_dilation"]), group=p["feature_group_count"])
    return g.node("Transpose", [y], perm=list(np.argsort(out)))


def _nchw_window(eqn):
    """The NHWC window's spatial part (dims 1, 2), refusing a window over N or C."""
    p = eqn.params
    window, strides, padding = p["window_dimensions"], p["window_strides"], p["padding"]
    if (window[0], window[-1], strides[0], strides[-1]) != (1, 1, 1, 1) or any(
            d != 1 for d in (*p["base_dilation"], *p["window_dilation"])):
        raise ExportError(f"ONNX: a pooling window {window} beyond the spatial dimensions")
    pads = [lo for lo, _ in padding[1:-1]] + [hi for _, hi in padding[1:-1]]
    return list(window[1:-1]), list(strides[1:-1]), pads


def _max_pool(g: Graph, eqn, x) -> str:
    # Padding is the window's -inf, which ONNX's MaxPool never picks either.
    kernel, strides, pads = _nchw_window(eqn)
    y = g.node("MaxPool", [g.node("Transpose", [x], perm=[0, 3, 1, 2])],
               kernel_shape=kernel, strides=strides, pads=pads)
    return g.node("Transpose", [y], perm=[0, 2, 3, 1])


def _sum_pool(g: Graph, eqn, x) -> str:
    # A sum over each window: a depthwise convolution with a kernel of ones.
    kernel, strides, pads = _nchw_window(eqn)
    channels = eqn.invars[0].aval.shape[-1]
    ones = g.const(np.ones((channels, 1, *kernel), eqn.invars[0].aval.dtype), "ones")
    y = g.node("Conv", [g.node("Transpose", [x], perm=[0, 3, 1, 2]), ones],
               strides=strides, pads=pads, group=channels, kernel_shape=kernel)
    return g.node("Transpose", [y], perm=[0, 2, 3, 1])


def _broadcast(g: Graph, eqn, x) -> str:
    # Rank first (size-1 axes where the operand has none), then sizes; the batch stays 1
    # where the operand has none: the consumer's broadcasting supplies it.
    p = eqn.params
    shape, dims = p["shape"], p["broadcast_dimensions"]
    new_axes = [i for i in range(len(shape)) if i not in dims]
    if new_axes:
        x = g.node("Unsqueeze", [x, g.ints(new_axes)])
    target = [1 if i == 0 and 0 in new_axes else n for i, n in enumerate(shape)]
    if target and target[0] == g.batch:
        target[0] = 1
    return g.node("Expand", [x, g.ints(target)])


def _broadcast_constant(eqn, value: np.ndarray) -> np.ndarray:
    """``_broadcast`` of a constant, done now (the batch dimension left at 1)."""
    p = eqn.params
    shape, dims = p["shape"], p["broadcast_dimensions"]
    expanded = value.reshape([value.shape[dims.index(i)] if i in dims else 1
                              for i in range(len(shape))])
    return np.broadcast_to(expanded, [1 if i == 0 and i not in dims else n
                                      for i, n in enumerate(shape)]).copy()


def _dot_general(g: Graph, eqn, a, b) -> str:
    (ca, cb), (ba, bb) = eqn.params["dimension_numbers"]
    ra, rb = (len(v.aval.shape) for v in eqn.invars)
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    la, lb = [next(letters) for _ in range(ra)], [None] * rb
    for i, j in zip((*ca, *ba), (*cb, *bb), strict=True):
        lb[j] = la[i]
    lb = [c or next(letters) for c in lb]
    out = [la[i] for i in ba] + [la[i] for i in range(ra) if i not in (*ca, *ba)] + [
        lb[j] for j in range(rb) if j not in (*cb, *bb)]
    return g.node("Einsum", [a, b], equation=f"{''.join(la)},{''.join(lb)}->{''.join(out)}")


def _slice(g: Graph, eqn, x) -> str:
    p = eqn.params
    starts, limits = list(p["start_indices"]), list(p["limit_indices"])
    steps = list(p["strides"] or [1] * len(starts))
    if limits and limits[0] == g.batch:
        limits[0] = np.iinfo(np.int64).max
    return g.node("Slice", [x, g.ints(starts), g.ints(limits),
                            g.ints(range(len(starts))), g.ints(steps)])


def _rev(g: Graph, eqn, x) -> str:
    axes = list(eqn.params["dimensions"])
    big = np.iinfo(np.int64).max
    return g.node("Slice", [x, g.ints([-1] * len(axes)), g.ints([-big] * len(axes)),
                            g.ints(axes), g.ints([-1] * len(axes))])


def _pad(g: Graph, eqn, x, value) -> str:
    config = eqn.params["padding_config"]
    if any(interior for _, _, interior in config):
        raise ExportError("ONNX: interior padding")
    pads = [lo for lo, _, _ in config] + [hi for _, hi, _ in config]
    return g.node("Pad", [x, g.ints(pads), value], mode="constant")


_CONVERTERS: dict[str, Callable] = {
    "conv_general_dilated": _conv, "reduce_window_max": _max_pool,
    "reduce_window_sum": _sum_pool, "broadcast_in_dim": _broadcast,
    "dot_general": _dot_general, "slice": _slice, "rev": _rev, "pad": _pad,
    "convert_element_type": lambda g, e, x: g.node(
        "Cast", [x], to=_onnx_type(e.params["new_dtype"])),
    "reshape": lambda g, e, x: g.node(
        "Reshape", [x, g.ints(g.batch_free(e.params["new_sizes"]))]),
    "squeeze": lambda g, e, x: g.node("Squeeze", [x, g.ints(e.params["dimensions"])]),
    "transpose": lambda g, e, x: g.node("Transpose", [x], perm=list(e.params["permutation"])),
    "reduce_sum": lambda g, e, x: g.node(
        "ReduceSum", [x, g.ints(e.params["axes"])], keepdims=0),
    "reduce_max": lambda g, e, x: g.node(
        "ReduceMax", [x], axes=list(e.params["axes"]), keepdims=0),
    "rsqrt": lambda g, e, x: g.node("Reciprocal", [g.node("Sqrt", [x])]),
    "square": lambda g, e, x: g.node("Mul", [x, x]),
    "integer_pow": lambda g, e, x: g.node(
        "Pow", [x, g.const(np.asarray(e.params["y"], e.invars[0].aval.dtype))]),
    "select_n": lambda g, e, p, *cases: (
        g.node("Where", [p, cases[1], cases[0]]) if len(cases) == 2 else None),
    "clamp": lambda g, e, lo, x, hi: g.node("Min", [g.node("Max", [x, lo]), hi]),
    "concatenate": lambda g, e, *xs: g.node("Concat", list(xs),
                                            axis=e.params["dimension"]),
}


def _fold(eqn, values):
    """A first-order equation on constants, computed now."""
    out = eqn.primitive.bind(*map(jnp.asarray, values), **eqn.params)
    return [np.asarray(o) for o in out] if eqn.primitive.multiple_results else [np.asarray(out)]


def _emit(g: Graph, eqn, values) -> list:
    """The equation's outputs: names of ONNX values, or numpy constants where folded."""
    name = eqn.primitive.name
    if name in _CALLS:
        closed = eqn.params[_CALLS[name]]
        inner = closed.jaxpr if hasattr(closed, "jaxpr") else closed
        return _walk(g, inner, list(getattr(closed, "consts", [])), values)
    if all(isinstance(v, np.ndarray) for v in values) and not _batched(g, eqn):
        return _fold(eqn, values)
    if name == "div" and isinstance(values[1], np.ndarray) and np.all(values[1] == 1):
        return [values[0]]  # XLA:CPU's materialising divide (models/conv_impl.py): exact.
    if name == "conv_general_dilated":  # The kernel in ONNX's OIHW now: a weight.
        if not isinstance(values[1], np.ndarray):
            raise ExportError("ONNX: a convolution whose kernel is computed from the input")
        values = [values[0], np.transpose(values[1], eqn.params["dimension_numbers"][1])]
    if name == "broadcast_in_dim" and isinstance(values[0], np.ndarray):
        return [_broadcast_constant(eqn, values[0])]
    inputs = [g.const(v) if isinstance(v, np.ndarray) else v for v in values]
    if name in _ELEMENTWISE:
        return [g.node(_ELEMENTWISE[name], inputs)]
    out = _CONVERTERS[name](g, eqn, *inputs) if name in _CONVERTERS else None
    if out is None:
        raise ExportError(f"ONNX: this converter has no rule for JAX's {name!r} "
                          f"({eqn.params if len(str(eqn.params)) < 80 else '...'})")
    return [out]


def _batched(g: Graph, eqn) -> bool:
    """Whether an output carries the batch dimension (then it is computed in the graph)."""
    return any(v.aval.shape and v.aval.shape[0] == g.batch for v in eqn.outvars)


def _walk(g: Graph, jaxpr, consts: list, values: list) -> list:
    env = dict(zip(jaxpr.constvars, [np.asarray(c) for c in consts], strict=True))
    env.update(zip(jaxpr.invars, values, strict=True))

    def read(v):
        return np.asarray(v.val) if isinstance(v, core.Literal) else env[v]

    for eqn in jaxpr.eqns:
        for var, out in zip(eqn.outvars, _emit(g, eqn, [read(v) for v in eqn.invars]),
                            strict=True):
            env[var] = out
    return [read(v) for v in jaxpr.outvars]


def convert(fn: Callable, input_shape: tuple[int, ...], batch: int = 7) -> onnx.ModelProto:
    """The ONNX model of ``fn(uint8 NHWC images) -> logits``: input ``images``
    [batch, *input_shape] uint8, output ``logits`` [batch, classes] float32."""
    example = jax.ShapeDtypeStruct((batch, *input_shape), jnp.uint8)
    closed = jax.make_jaxpr(fn)(example)
    g = Graph(batch)
    (logits,) = _walk(g, closed.jaxpr, closed.consts, ["images"])
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    classes = closed.jaxpr.outvars[0].aval.shape[-1]
    graph = helper.make_graph(
        g.nodes, "resnet_flax",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", *input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="resnet_flax")
    onnx.checker.check_model(model, full_check=False)
    return model
