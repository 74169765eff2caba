"""A trained model leaves the project: ``export(exportable, output)`` writes StableHLO
(``jax.export``) and a weights folder in the Hugging Face Hub's layout, checks each
against the model it came from, and describes them in ``export.json``::

    from resnet_flax import export
    export.export(export.from_workdir("runs/fm"), "exported/fm")
    export.export(export.from_weights("resnet50.tv2_in1k"), "exported/r50")

The exported function takes uint8 NHWC images of the input size and returns float32
logits: scaling and normalisation (and a run's resize, grey-to-RGB and flip TTA) happen
inside; ``export.json`` says how an image of any size becomes that input (``view``).
The names load on first use, so that the command sets XLA up before JAX is imported.
"""

import importlib

FORMATS = ("stablehlo", "onnx", "weights")
TOLERANCE = 1e-4  # Largest relative difference of any format's logits from the model's.

_PUBLIC = {"export": "writer", "export_model": "writer", "ExportError": "source",
           "Exportable": "source",
           "from_weights": "source", "from_workdir": "source"}
__all__ = ["FORMATS", "TOLERANCE", *sorted(_PUBLIC)]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'resnet_flax.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"resnet_flax.export.{_PUBLIC[name]}"), name)
