"""The pretrained ImageNet weights known by name: timm's copies on the Hugging Face Hub
(``timm/<name>``), torchvision's own weights among them, each with its published top-1
and the evaluation transform it was measured with.

Figures: timm's ``results/results-imagenet.csv`` (ImageNet-1k validation, 224 px, the
crop fraction and interpolation below); torchvision's own docs give the same weights
within 0.05 points.
"""

from __future__ import annotations

import dataclasses

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# timm's architecture names where the registry's differ.
TIMM_ARCHITECTURES = {"seresnet50": "se_resnet50"}
SOURCES = {
    "tv_in1k": "torchvision's IMAGENET1K_V1 (He et al.'s recipe)",
    "tv2_in1k": "torchvision's IMAGENET1K_V2 (its 2021 recipe, 600 epochs)",
    "a1_in1k": "timm's ResNet strikes back, A1 (Wightman et al. 2021, 600 epochs)",
    "ra2_in1k": "timm's RandAugment recipe (RA2)",
}


@dataclasses.dataclass(frozen=True)
class Weights:
    """One set of weights: where it lives, the model it fits, how it was evaluated."""

    name: str  # "resnet50.tv2_in1k": timm's architecture.tag
    model: str  # the registry's model name
    top1: float | None = None
    top5: float | None = None
    crop_fraction: float = 0.875
    interpolation: str = "bilinear"
    size: int = 224
    hub_id: str = ""
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    options: tuple = ()  # (option, value) pairs of config.model_options the model needs.
    class_names: tuple[str, ...] | None = None  # Its outputs' names, where it has its own.

    @property
    def tag(self) -> str:
        return self.name.partition(".")[2]

    @property
    def source(self) -> str:
        return SOURCES.get(self.tag, self.hub_id or self.name)

    @property
    def resize_to(self) -> int:
        """The shorter side before the centre crop (timm's floor: 224 / 0.875 -> 256)."""
        return int(self.size / self.crop_fraction)


def _entry(name: str, top1: float, top5: float, crop: float, interpolation: str) -> Weights:
    architecture = name.partition(".")[0]
    return Weights(name, TIMM_ARCHITECTURES.get(architecture, architecture), top1, top5,
                   crop, interpolation, hub_id=f"timm/{name}")


_TV, _TV2, _A1, _RA2 = (0.875, "bilinear"), (0.965, "bilinear"), (0.95, "bicubic"), \
    (0.875, "bicubic")
CATALOGUE: dict[str, Weights] = {w.name: w for w in (
    _entry("resnet18.tv_in1k", 69.752, 89.082, *_TV),
    _entry("resnet18.a1_in1k", 71.504, 90.086, *_A1),
    _entry("resnet34.tv_in1k", 73.298, 91.422, *_TV),
    _entry("resnet34.a1_in1k", 76.420, 92.896, *_A1),
    _entry("resnet50.tv_in1k", 76.156, 92.866, *_TV),
    _entry("resnet50.tv2_in1k", 80.846, 95.430, *_TV2),
    _entry("resnet50.a1_in1k", 80.382, 94.598, *_A1),
    _entry("resnet101.tv_in1k", 77.404, 93.552, *_TV),
    _entry("resnet101.tv2_in1k", 81.906, 95.768, *_TV2),
    _entry("resnet101.a1_in1k", 81.494, 95.164, *_A1),
    _entry("resnet152.tv_in1k", 78.330, 94.046, *_TV),
    _entry("resnet152.tv2_in1k", 82.294, 96.000, *_TV2),
    _entry("resnet152.a1_in1k", 81.998, 95.294, *_A1),
    _entry("resnext50_32x4d.tv_in1k", 77.632, 93.674, *_TV),
    _entry("resnext50_32x4d.tv2_in1k", 81.190, 95.344, *_TV2),
    _entry("resnext50_32x4d.a1_in1k", 80.526, 94.458, *_A1),
    _entry("resnext101_32x8d.tv_in1k", 79.308, 94.530, *_TV),
    _entry("resnext101_32x8d.tv2_in1k", 82.832, 96.234, *_TV2),
    _entry("resnext101_64x4d.tv_in1k", 82.978, 96.252, *_TV),
    _entry("wide_resnet50_2.tv_in1k", 78.486, 94.084, *_TV),
    _entry("wide_resnet50_2.tv2_in1k", 81.612, 95.766, *_TV2),
    _entry("wide_resnet101_2.tv_in1k", 78.862, 94.312, *_TV),
    _entry("wide_resnet101_2.tv2_in1k", 82.514, 96.012, *_TV2),
    _entry("resnet50d.a1_in1k", 80.730, 94.678, *_A1),
    _entry("resnet50d.ra2_in1k", 80.546, 95.160, *_RA2),
    _entry("seresnet50.a1_in1k", 80.012, 94.704, *_A1),
    _entry("seresnet50.ra2_in1k", 80.260, 95.068, *_RA2),
)}


def names() -> list[str]:
    return sorted(CATALOGUE)


def from_hub_config(hub_id: str, config: dict) -> Weights:
    """The ``Weights`` of a hub repository from its timm ``config.json``."""
    cfg = config.get("pretrained_cfg", {})
    architecture = config.get("architecture", "")
    size = cfg.get("input_size", [3, 224, 224])[-1]
    ours = config.get("resnet_flax", {})  # What an export of this package adds.
    names = config.get("label_names")
    return Weights(f"{architecture}.{cfg.get('tag', '')}".rstrip("."),
                   ours.get("model", TIMM_ARCHITECTURES.get(architecture, architecture)),
                   crop_fraction=float(cfg.get("crop_pct", 0.875)),
                   interpolation=cfg.get("interpolation", "bilinear"), size=int(size),
                   hub_id=hub_id, mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
                   std=tuple(cfg.get("std", IMAGENET_STD)),
                   options=tuple(sorted(ours.get("model_options", {}).items())),
                   class_names=tuple(names) if names else None)


def table() -> str:
    """The catalogue as a Markdown table (docs/models.md holds this same table)."""
    rows = ["| name | model | top-1 | top-5 | evaluation view | weights |",
            "|---|---|---|---|---|---|"]
    for w in CATALOGUE.values():
        rows.append(f"| `{w.name}` | `{w.model}` | {w.top1:.2f} | {w.top5:.2f} | "
                    f"{w.resize_to} -> {w.size}, {w.interpolation} | {w.source} |")
    return "\n".join(rows)
