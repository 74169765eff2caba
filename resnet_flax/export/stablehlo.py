"""StableHLO through ``jax.export``: the inference function, weights inside, with a
symbolic batch dimension, for CPU and CUDA. Reading it back needs JAX alone::

    exported = jax.export.deserialize(open("model.stablehlo", "rb").read())
    logits = exported.call(images)          # uint8 NHWC, any batch size
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp

from resnet_flax.export.source import Exportable, ExportError

FILE = "model.stablehlo"
PLATFORMS = ("cpu", "cuda")


def exported(exportable: Exportable) -> jax.export.Exported:
    """The ``jax.export.Exported`` of ``exportable``'s logits, its variables constants."""
    batch = jax.export.symbolic_shape("batch")[0]
    images = jax.ShapeDtypeStruct((batch, *exportable.input_shape), jnp.uint8)
    fn = jax.jit(functools.partial(exportable.logits, exportable.variables))
    try:
        return jax.export.export(fn, platforms=PLATFORMS)(images)
    except Exception as e:  # noqa: BLE001 - any lowering failure is this model's.
        raise ExportError(f"StableHLO: jax.export cannot express {exportable.model_name} "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def write(exportable: Exportable, folder: pathlib.Path) -> pathlib.Path:
    path = folder / FILE
    path.write_bytes(exported(exportable).serialize())
    return path


def load(path: pathlib.Path) -> jax.export.Exported:
    return jax.export.deserialize(bytearray(pathlib.Path(path).read_bytes()))
