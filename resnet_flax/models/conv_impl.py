"""The convolution every ``layers.conv`` calls: ``lax.conv_general_dilated``, tuned for XLA:CPU.

On the CPU backend XLA computes a weight gradient as a convolution over a
transposed copy of the layer's input. Its fusion pass treats the elementwise
chain that produced that input (BN, ReLU, the residual add, and through the
shortcut every earlier block's) as free to recompute, and fuses the whole chain
into each transpose: work that grows with depth, in a slow strided loop (its cost:
BENCHMARKS.md, "Eigen convolutions, one device, conv inputs materialised"). Dividing
the input by a runtime 1.0 stops it: XLA:CPU will not duplicate a floating-point
divide, so the input is computed once and the transpose reads it. ``x / 1.0`` is
exact in IEEE arithmetic (and so is the gradient's ``g / 1.0``), so results are
bit-identical; other backends get the plain convolution.
"""

from __future__ import annotations

import jax
from jax import lax


def _runtime_one(kernel: jax.Array, dtype) -> jax.Array:
    """1.0 of ``dtype`` that XLA cannot constant-fold: ``0 * w + 1`` (floats keep ``0 * w``).

    A non-finite kernel would make this NaN, but such a step is already lost and
    the trainer stops on the NaN loss.
    """
    w = lax.stop_gradient(kernel.reshape(-1)[0])
    return (w * 0 + 1).astype(dtype)


def materialize_on_cpu(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``x``, computed once rather than re-fused into every consumer, on XLA:CPU."""
    if jax.default_backend() != "cpu":
        return x
    return x / _runtime_one(kernel, x.dtype)


def conv_general_dilated(lhs, rhs, *args, **kwargs):
    """``lax.conv_general_dilated`` with ``lhs`` materialised on CPU (see module doc)."""
    return lax.conv_general_dilated(materialize_on_cpu(lhs, rhs), rhs, *args, **kwargs)
