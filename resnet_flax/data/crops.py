"""ImageNet-style crops on the host, for images of any size (the stream input's workers).

Training: Inception's random-resized crop (Szegedy et al. 2015), drawn exactly as
torchvision's ``RandomResizedCrop`` draws it. Evaluation: resize the shorter side to
``size / fraction`` and take the centre ``size`` x ``size`` (the 0.875 convention:
256 -> 224). Both resize with PIL's bilinear filter, as torchvision does on PIL images.
Flips stay on the device (``config.random_flip``), with every other augmentation.

``train_view`` and ``eval_view`` take an example as stored (a file's bytes, or raw
pixels) and decode it as the crop needs: Pillow's image is resized straight to the
output, with no copies between, and for training a JPEG is decoded at 1/2, 1/4 or 1/8
scale (libjpeg's DCT scaling, ``Image.draft``) when the crop box stays at least ``size``
pixels at that scale. The box is the same draw either way; only the pixels differ a
little from a full decode (docs/data.md). A training crop decodes a JPEG only down to
the box's last rows (``jpeg.shortened``), which changes no pixel. Evaluation always
decodes in full.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from resnet_flax.data import images, jpeg

INCEPTION_SCALE = (0.08, 1.0)
INCEPTION_RATIO = (3 / 4, 4 / 3)
EVAL_FRACTION = 0.875
_ATTEMPTS = 10


def inception_box(rng: np.random.Generator, height: int, width: int,
                  scale: Sequence[float] = INCEPTION_SCALE,
                  ratio: Sequence[float] = INCEPTION_RATIO) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width): a share ``scale`` of the area with aspect
    ``ratio`` (log-uniform), the first of 10 tries that fits; otherwise the centre crop
    with the aspect ratio clamped to ``ratio`` (torchvision's ``get_params``)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(_ATTEMPTS):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def _resized(image: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int]):
    """``image[top:top+h, left:left+w]`` resized to ``size`` (H, W), bilinear, uint8."""
    top, left, h, w = box
    grey = image.ndim == 3 and image.shape[-1] == 1
    pil = Image.fromarray(image[..., 0] if grey else image)
    out = np.asarray(pil.resize((size[1], size[0]), Image.BILINEAR,
                                box=(left, top, left + w, top + h)))
    return out[..., None] if grey else out


def random_resized_crop(rng: np.random.Generator, image: np.ndarray, size: int,
                        scale: Sequence[float] = INCEPTION_SCALE,
                        ratio: Sequence[float] = INCEPTION_RATIO) -> np.ndarray:
    """Inception's training crop of an HWC uint8 image, resized to ``size`` x ``size``."""
    box = inception_box(rng, image.shape[0], image.shape[1], scale, ratio)
    return _resized(image, (size, size), box)


def resize_shorter(height: int, width: int, shorter: int) -> tuple[int, int]:
    """(H, W) with the shorter side ``shorter`` and the aspect ratio kept (torchvision's
    ``Resize(int)``: the longer side truncated)."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def centre_crop(image: np.ndarray, size: int, fraction: float = EVAL_FRACTION) -> np.ndarray:
    """The evaluation view: shorter side resized to ``round(size / fraction)``, then the
    centre ``size`` x ``size`` (``Resize(256)`` + ``CenterCrop(224)`` at 0.875)."""
    h, w = resize_shorter(image.shape[0], image.shape[1], int(round(size / fraction)))
    resized = _resized(image, (h, w), (0, 0, image.shape[0], image.shape[1]))
    top, left = int(round((h - size) / 2)), int(round((w - size) / 2))
    return resized[top:top + size, left:left + size]


def _dct_scale(box: tuple[int, int, int, int], size: int) -> int:
    """The DCT scale (1, 2, 4 or 8) a JPEG may be decoded at for ``box`` (top, left, h,
    w): the largest that keeps the box at least ``size`` pixels a side."""
    shorter = min(box[2], box[3])
    if shorter < 2 * size:
        return 1
    return next(s for s in (8, 4, 2) if shorter // size >= s)


def _vertical_first(height: int, width: int, size: int) -> bool:
    """Whether Pillow (13 on) resizes a ``height`` x ``width`` image to ``size`` x ``size``
    vertical pass first, which it picks by the whole image's shape (Resample.c)."""
    return height - size > 0 and height - size > 2 * (width - size)


def _jpeg_for_box(data: bytes, found: jpeg.Frame, box, size: int, reduce: bool):
    """The JPEG ``data`` (frame header ``found``) opened to decode no more than ``box``
    (top, left, h, w) needs: at a reduced DCT scale where it allows (``reduce``), and
    only down to the box's last row and the filter's reach below it (``jpeg.decode``),
    where the resize then reads the same pixels as from a full decode. Returns (image,
    box in its pixels)."""
    top, left, h, w = box
    scale = _dct_scale(box, size) if reduce else 1
    full = (-(-found.height // scale), -(-found.width // scale))
    rows = found.height if _vertical_first(*full, size) else \
        top + h + math.ceil(max(h / size, scale)) + 1
    fy, fx = full[0] / found.height, full[1] / found.width
    return (jpeg.decode(data, found, rows, scale),
            (left * fx, top * fy, (left + w) * fx, (top + h) * fy))


def _view(image: Image.Image, channels: int, size: int, source) -> np.ndarray:
    """``image``'s box ``source`` (left, top, right, bottom) resized to ``size``, uint8."""
    with image:
        out = images.convert(image, channels).resize((size, size), Image.BILINEAR, box=source)
    return np.frombuffer(out.tobytes(), np.uint8).reshape(size, size, channels)


def train_view(rng: np.random.Generator, data, channels: int, size: int,
               scale: Sequence[float] = INCEPTION_SCALE,
               ratio: Sequence[float] = INCEPTION_RATIO, reduce: bool = True) -> np.ndarray:
    """Inception's training crop of a stored example, decoded as the crop needs
    (``reduce``: at a reduced DCT scale where the box allows); uint8 (size, size, C)."""
    if isinstance(data, np.ndarray):
        return random_resized_crop(rng, images.decode(data, channels), size, scale, ratio)
    found = jpeg.frame(data)
    if found is None:  # Another format, or a JPEG Pillow decodes its own way: whole.
        image = images.open_bytes(data)
        top, left, h, w = inception_box(rng, image.height, image.width, scale, ratio)
        return _view(image, channels, size, (left, top, left + w, top + h))
    box = inception_box(rng, found.height, found.width, scale, ratio)
    image, source = _jpeg_for_box(data, found, box, size, reduce)
    return _view(image, channels, size, source)


def eval_view(data, channels: int, size: int, fraction: float = EVAL_FRACTION) -> np.ndarray:
    """``centre_crop`` of a stored example, from a full decode (torchvision's pixels)."""
    if isinstance(data, np.ndarray):
        return centre_crop(images.decode(data, channels), size, fraction)
    found = jpeg.frame(data)
    with jpeg.decode(data, found, found.height) if found else images.open_bytes(data) as image:
        image = images.convert(image, channels)
        h, w = resize_shorter(image.height, image.width, int(round(size / fraction)))
        resized = image.resize((w, h), Image.BILINEAR)
    top, left = int(round((h - size) / 2)), int(round((w - size) / 2))
    out = resized.crop((left, top, left + size, top + size)).tobytes()
    return np.frombuffer(out, np.uint8).reshape(size, size, channels)
