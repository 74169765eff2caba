"""Per-layer model summary (like Keras' ``model.summary()``): shapes, parameters, MACs.

``summarize(name)`` traces one ``init`` with ``jax.eval_shape`` (nothing is
computed or allocated) while ``nn.intercept_methods`` records every ``Conv``,
``Dense`` and ``BatchNorm`` call: its path, output shape and parameters. MACs
(multiply-accumulates, for one image) are counted analytically from the shapes:
``H_out * W_out * C_out * k_h * k_w * C_in / groups`` for a conv and ``in * out``
for a dense layer; norms, activations, pools and additions are not counted, the
convention behind torchvision's published "GFLOPS" (ResNet-50: 4.09 G).

CLI: ``python -m resnet_flax.summary --model resnet50 [--image-size 224]``, or
``--zoo`` for a markdown table of every registered model (README's).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from resnet_flax import models
from resnet_flax.models import cross_device, norms

_COUNTED = (nn.Conv, nn.Dense, nn.BatchNorm, cross_device.GhostBatchNorm, norms.GroupNorm)


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One parameterized layer: ``path`` like ``layer1_0/conv1``."""

    path: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclasses.dataclass(frozen=True)
class Summary:
    """All layers of one model at one input shape (per image, batch dimension 1)."""

    model: str
    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    non_trainable: int  # BatchNorm running means and variances (``batch_stats``).

    @property
    def params(self) -> int:
        """Trainable parameters (the ``params`` collection): torchvision's count."""
        return sum(r.params for r in self.rows)

    @property
    def total(self) -> int:
        """Trainable parameters and BatchNorm statistics: Keras' ``count_params()``."""
        return self.params + self.non_trainable

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    def table(self) -> str:
        """The Keras-style text table with totals. "Params" are trainable parameters (the
        ``params`` collection, torchvision's count); the BatchNorm running statistics are
        counted apart, and both together are Keras' ``count_params()``."""
        header = ("Layer (type)", "Output shape", "Params", "MACs")
        body = [(f"{r.path} ({r.kind})", str(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
                for r in self.rows]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]
        def fmt(row):
            cells = zip(row, widths, strict=True)
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(cells))

        rule = "=" * len(fmt(header))
        lines = [f'Model: "{self.model}"  input {self.input_shape}', rule, fmt(header), rule]
        lines += [fmt(row) for row in body]
        lines += [rule,
                  f"Trainable params: {self.params:,} ({format_count(self.params)})",
                  f"Non-trainable (BN statistics): {self.non_trainable:,} "
                  f"({format_count(self.non_trainable)})",
                  f"Total params (Keras' count_params: both): {self.total:,} "
                  f"({format_count(self.total)})",
                  f"Total MACs: {self.macs:,} ({format_count(self.macs)})"]
        return "\n".join(lines)


def format_count(n: int) -> str:
    """``4089184256`` -> ``"4.09 G"``."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def _macs(module: nn.Module, x: jnp.ndarray, y: jnp.ndarray, kernel_shape) -> int:
    if isinstance(module, nn.Conv):
        # kernel (kh, kw, C_in / groups, C_out): each output element costs kh*kw*C_in/g.
        return math.prod(y.shape[1:]) * math.prod(kernel_shape[:-1])
    if isinstance(module, nn.Dense):
        return math.prod(y.shape[1:]) * kernel_shape[0]
    return 0


def summarize(model: str | nn.Module, input_shape: Sequence[int] | None = None,
              num_classes: int | None = None, **overrides) -> Summary:
    """Per-layer parameters and MACs of ``model`` (a registered name or a module).

    ``input_shape`` is (H, W, C); it defaults to the registered model's natural
    input. ``num_classes`` and ``overrides`` go to ``models.create``.
    """
    if isinstance(model, str):
        name = model
        if input_shape is None:
            input_shape = models.spec(name).input_shape
        module = models.create(name, num_classes=num_classes, **overrides)
    else:
        name, module = type(model).__name__, model
        if input_shape is None:
            raise ValueError("input_shape is required for a module")
    rows: list[LayerRow] = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        mod = context.module
        if context.method_name == "__call__" and isinstance(mod, _COUNTED):
            params = mod.variables.get("params", {})
            kernel = params.get("kernel")
            rows.append(LayerRow(
                path="/".join(mod.scope.path), kind=type(mod).__name__,
                output_shape=tuple(out.shape[1:]),
                params=sum(math.prod(p.shape) for p in jax.tree.leaves(params)),
                macs=_macs(mod, args[0], out, None if kernel is None else kernel.shape)))
        return out

    x = jnp.zeros((1, *input_shape), jnp.float32)
    with nn.intercept_methods(record):
        variables = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False))
    stats = sum(math.prod(v.shape) for v in jax.tree.leaves(variables.get("batch_stats", {})))
    return Summary(name, tuple(input_shape), tuple(rows), stats)


def zoo_table() -> str:
    """A markdown table of every registered model at its natural input (for README)."""
    lines = ["| model | classes | input | params | MACs |", "|---|---|---|---|---|"]
    for name in models.names():
        spec = models.spec(name)
        s = summarize(name)
        h, w, c = spec.input_shape
        lines.append(f"| `{name}` | {spec.num_classes} | {h}x{w}x{c} | {s.params:,} | "
                     f"{format_count(s.macs)} |")
    return "\n".join(lines)
