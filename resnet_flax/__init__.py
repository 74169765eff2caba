"""resnet_flax: residual networks in JAX/Flax, trained end to end on TFDS data.

What a notebook imports::

    import resnet_flax as rf

    model = rf.create_model("resnet50")            # torchvision's ResNet-50, 1000 classes
    rf.model_names()                               # every registered model
    variables = rf.from_torch("resnet50", "resnet50.safetensors")  # converted weights
    config = rf.default_config()                   # every field, with its default
    summary = rf.train_and_evaluate(config, "runs/x")
    result = rf.evaluate_checkpoint(config, "runs/x")
    rf.build_folder("/data/flowers")               # your images: dataset folder:/data/flowers
    rf.export_model("exported/x", workdir="runs/x")  # StableHLO + a Hub weights folder

The names load their modules on first use, so that ``python -m resnet_flax.main`` sets
up XLA before anything imports JAX through this package.
"""

import importlib

__version__ = "0.1.0"

# Public name -> (module, attribute).
_PUBLIC = {
    "create_model": ("resnet_flax.models", "create"),
    "model_names": ("resnet_flax.models", "names"),
    "from_torch": ("resnet_flax.models.torch_weights", "from_torch"),
    "default_config": ("resnet_flax.config", "default_config"),
    "validate": ("resnet_flax.run.validate", "validate"),
    "train_and_evaluate": ("resnet_flax.run.train_loop", "train_and_evaluate"),
    "evaluate_checkpoint": ("resnet_flax.run.evaluate", "evaluate_checkpoint"),
    "build_folder": ("resnet_flax.data.folders", "build"),
    "export_model": ("resnet_flax.export", "export_model"),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'resnet_flax' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    return getattr(importlib.import_module(module), attribute)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
