"""A Hugging Face Hub cache laid out as ``huggingface_hub`` lays it out
(``models--owner--name/{blobs,refs,snapshots}``), holding a random-init torch ResNet's
weights as timm publishes them (``model.safetensors`` + ``config.json``), so that the
pretrained-by-name paths run offline against the real library."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def add_repo(cache: pathlib.Path, hub_id: str, files: dict[str, bytes]) -> pathlib.Path:
    """``files`` as the ``main`` snapshot of ``hub_id`` in ``cache``: each a blob named
    by its SHA-256, linked from the snapshot as the library does."""
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / digest).write_bytes(data)
        link = snapshot / name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(pathlib.Path("..", "..", "blobs", digest), link)
    return snapshot


def timm_files(reference_name: str, architecture: str, tag: str, seed: int = 0,
               crop_pct: float = 0.875, interpolation: str = "bilinear"):
    """(the random-init torch model, its hub files) for ``architecture.tag``."""
    import torch
    import torch_models
    from safetensors.torch import save

    torch.manual_seed(seed)
    model = torch_models.randomize_(torch_models.REFERENCES[reference_name](), seed)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    config = {"architecture": architecture, "num_classes": 1000, "num_features": 512,
              "pretrained_cfg": {"tag": tag, "input_size": [3, 224, 224],
                                 "interpolation": interpolation, "crop_pct": crop_pct,
                                 "crop_mode": "center", "mean": [0.485, 0.456, 0.406],
                                 "std": [0.229, 0.224, 0.225], "num_classes": 1000}}
    return model, {"model.safetensors": save(state),
                   "config.json": json.dumps(config).encode()}
