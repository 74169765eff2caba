"""A weights folder in the Hugging Face Hub's layout, as timm publishes one:
``model.safetensors`` (torch's names and layouts, so timm and torchvision read a
registry architecture's file as their own), ``config.json`` (timm's ``pretrained_cfg``,
plus the model name and options this package builds it from) and a model card
``README.md``. ``huggingface-cli upload OWNER/REPO FOLDER`` publishes it as it is, and
``pretrained.load`` reads it back from the folder or from the hub."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
from flax import traverse_util

from resnet_flax.export.source import Exportable
from resnet_flax.models.torch_weights import to_torch_layout, torch_key
from resnet_flax.pretrained.catalogue import TIMM_ARCHITECTURES

FOLDER = "weights"
TIMM_NAMES = {ours: timm for timm, ours in TIMM_ARCHITECTURES.items()}


def state_dict(exportable: Exportable) -> dict[str, np.ndarray]:
    """The variables under torch's names, with the BatchNorm step counters torch keeps."""
    tensors = {}
    for (collection, *path), value in traverse_util.flatten_dict(
            exportable.variables).items():
        key = torch_key(tuple(path), collection, exportable.avg_down)
        tensors[key] = np.ascontiguousarray(to_torch_layout(np.asarray(value, np.float32)))
        if key.endswith(".running_mean"):  # torch's strict loading asks for it.
            tensors[key.replace("running_mean", "num_batches_tracked")] = np.zeros((), np.int64)
    return tensors


def crop_pct(size: int, resize: int) -> float:
    """The ``crop_pct`` for which timm's rule, ``floor(size / crop_pct)``, gives ``resize``:
    ``size / resize`` itself where the division rounds that way, else its neighbour (a
    rounded figure, 0.8889 for 32 of 36, would give 35)."""
    pct = size / resize
    while math.floor(size / pct) < resize:
        pct = float(np.nextafter(pct, 0.0))
    while math.floor(size / pct) > resize:
        pct = float(np.nextafter(pct, 1.0))
    return pct


def hub_config(exportable: Exportable) -> dict:
    h, w, c = exportable.input_shape
    view = exportable.view or {}
    pct = crop_pct(view["centre_crop"], view["resize_shorter"]) if view else 1.0
    return {
        "architecture": TIMM_NAMES.get(exportable.model_name, exportable.model_name),
        "num_classes": len(exportable.class_names),
        "pretrained_cfg": {
            "input_size": [c, h, w], "interpolation": view.get("interpolation", "bilinear"),
            "crop_pct": pct, "crop_mode": "center",
            "mean": list(exportable.mean), "std": list(exportable.std),
            "num_classes": len(exportable.class_names), "classifier": "fc"},
        "label_names": list(exportable.class_names),
        "resnet_flax": {"model": exportable.model_name,
                        "model_options": exportable.model_options,
                        "source": exportable.source},
    }


def model_card(exportable: Exportable) -> str:
    """README.md: what it is, its figures, how to load it, how it was trained."""
    config, last = exportable.config or {}, exportable.metrics or {}
    dataset = config.get("dataset", "imagenet")
    lines = ["---", "library_name: resnet_flax", "pipeline_tag: image-classification",
             "tags: [image-classification, jax, flax, resnet]", f"datasets: [{dataset}]", "---",
             "", f"# {exportable.model_name} ({dataset})", "",
             f"A `{exportable.model_name}` exported by resnet_flax from {exportable.source}.",
             ""]
    if last:
        figures = ", ".join(f"{k} {v:.4f}" for k, v in sorted(last.items())
                            if k.startswith("test_") and isinstance(v, float))
        lines += [f"Last evaluation (epoch {last.get('epoch', '?')}): {figures}.", ""]
    h, w, c = exportable.input_shape
    lines += ["## Use", "", "```python", "from resnet_flax import pretrained", "",
              'model, variables = pretrained.load("OWNER/REPO")  # or this folder\'s path',
              "```", "",
              f"Input: {h}x{w}x{c} images scaled to [0, 1], less mean {list(exportable.mean)}, "
              f"over std {list(exportable.std)} (NHWC in Flax; the file holds torch's NCHW "
              "layouts and names).", ""]
    if config:
        lines += ["## Training config", "", "```json", json.dumps(config, indent=1,
                                                                  default=str), "```", ""]
    return "\n".join(lines)


def write(exportable: Exportable, folder: pathlib.Path) -> pathlib.Path:
    from safetensors.numpy import save_file

    out = folder / FOLDER
    out.mkdir()
    save_file(state_dict(exportable), str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(hub_config(exportable), indent=2,
                                                default=str) + "\n")
    (out / "README.md").write_text(model_card(exportable))
    return out
