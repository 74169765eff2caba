"""The evaluation transform pretrained weights expect: the shorter side resized to
``size / crop_fraction`` with the weights' own interpolation, the centre ``size`` x
``size`` taken, then ImageNet's mean and standard deviation (timm's and torchvision's
``Resize`` + ``CenterCrop`` + ``Normalize`` on PIL images)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from resnet_flax.data import crops
from resnet_flax.pretrained.catalogue import Weights

_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
            "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


def eval_view(image: Image.Image, weights: Weights) -> np.ndarray:
    """The centre crop of a PIL image (RGB, or grey for one-channel weights) as the
    weights were evaluated: uint8 HWC."""
    height, width = crops.resize_shorter(image.height, image.width, weights.resize_to)
    resized = image.resize((width, height), _FILTERS.get(weights.interpolation,
                                                         Image.Resampling.BILINEAR))
    size = weights.size
    top, left = int(round((height - size) / 2)), int(round((width - size) / 2))
    pixels = np.asarray(resized, np.uint8).reshape(height, width, len(resized.getbands()))
    return pixels[top:top + size, left:left + size]


def normalise(images: np.ndarray, weights: Weights) -> np.ndarray:
    """uint8 NHWC -> float32, scaled to [0, 1], less the mean, over the deviation."""
    mean = np.asarray(weights.mean, np.float32)
    std = np.asarray(weights.std, np.float32)
    return ((images.astype(np.float32) / 255.0) - mean) / std
