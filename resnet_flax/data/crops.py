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
the box's last rows (``jpeg.shortened``), which changes no pixel. Evaluation gives
torchvision's pixels exactly: its resize computes only the crop along the shorter side
where PIL's arithmetic is then the same (``_centre_plan``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

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


def eval_resize(size: int, fraction: float) -> int:
    """The shorter side the evaluation view resizes to before its centre ``size`` crop: the
    one rule of training's evaluation, ``--mode eval``, ``predict`` and an export."""
    return int(round(size / fraction))


def centre_crop(image: np.ndarray, size: int, fraction: float = EVAL_FRACTION) -> np.ndarray:
    """The evaluation view: shorter side resized to ``eval_resize(size, fraction)``, then
    the centre ``size`` x ``size`` (``Resize(256)`` + ``CenterCrop(224)`` at 0.875)."""
    grey = image.ndim == 3 and image.shape[-1] == 1
    plan = _centre_plan(image.shape[0], image.shape[1], size, fraction)
    out = _centred(Image.fromarray(image[..., 0] if grey else image), plan, size)
    return images.pixels(out, len(out.getbands())).reshape(size, size, *image.shape[2:])


class _CentrePlan(NamedTuple):
    """How PIL computes a centre crop: resize the source ``box`` to ``out`` (W, H), take
    ``size`` x ``size`` at ``corner`` (left, top); the source is decoded for ``rows``."""

    out: tuple[int, int]
    box: tuple[float, float, float, float]
    corner: tuple[int, int]
    rows: int


def _centre_plan(height: int, width: int, size: int, fraction: float,
                 found: jpeg.Frame | None = None) -> _CentrePlan:
    """torchvision's resize-then-centre-crop of a ``height`` x ``width`` image, with the
    resize computing only the crop's pixels along the shorter side, where that gives the
    same pixels: the resized shorter side a power of two makes PIL's box edges, scale and
    filter centres the same binary fractions as in the whole resize, and its two passes
    must run in the same order. A JPEG (``found``) landscape image is then decoded only
    down to the crop's last rows. The whole resize otherwise."""
    h, w = resize_shorter(height, width, eval_resize(size, fraction))
    top, left = int(round((h - size) / 2)), int(round((w - size) / 2))
    whole = _CentrePlan((w, h), (0, 0, width, height), (left, top), height)
    if min(h, w) & (min(h, w) - 1) or size > min(h, w):
        return whole
    order = _vertical_first(height, width, h, w)
    if height > width:
        x0, x1 = left * width / w, (left + size) * width / w
        part = _CentrePlan((size, h), (x0, 0, x1, height), (0, top), height)
        same = _vertical_first(height, width, h, size) == order
        return part if same and _in_float32(x0, x1, x1 - x0) else whole
    y0, y1 = top * height / h, (top + size) * height / h
    if not _in_float32(y0, y1, y1 - y0):
        return whole
    needed = min(height, math.ceil(y1 + max(height / h, 1.0)) + 1)
    for rows in (needed, height):  # Shortened, if that keeps the order; else whole.
        decoded = jpeg.decoded_height(found, rows) if found else height
        if _vertical_first(decoded, width, size, w) == order:
            return _CentrePlan((w, size), (0, y0, width, y1), (left, 0), rows)
    return whole


def _in_float32(*values: float) -> bool:
    """Whether PIL, which takes a box as 32-bit floats, gets exactly these values."""
    return all(float(np.float32(v)) == v for v in values)


def _centred(image: Image.Image, plan: _CentrePlan, size: int) -> Image.Image:
    """``image`` resized and centre-cropped by ``plan``."""
    left, top = plan.corner
    return image.resize(plan.out, Image.BILINEAR, box=plan.box).crop(
        (left, top, left + size, top + size))


def _dct_scale(box: tuple[int, int, int, int], size: int) -> int:
    """The DCT scale (1, 2, 4 or 8) a JPEG may be decoded at for ``box`` (top, left, h,
    w): the largest that keeps the box at least ``size`` pixels a side."""
    shorter = min(box[2], box[3])
    if shorter < 2 * size:
        return 1
    return next(s for s in (8, 4, 2) if shorter // size >= s)


def _vertical_first(height: int, width: int, out_height: int, out_width: int) -> bool:
    """Whether Pillow (13 on) resizes a ``height`` x ``width`` image to ``out_height`` x
    ``out_width`` vertical pass first, which it picks by the whole image's shape
    (Resample.c)."""
    grow = height - out_height
    return grow > 0 and grow > 2 * (width - out_width)


def _jpeg_for_box(data: bytes, found: jpeg.Frame, box, size: int, reduce: bool):
    """The JPEG ``data`` (frame header ``found``) opened to decode no more than ``box``
    (top, left, h, w) needs: at a reduced DCT scale where it allows (``reduce``), and
    only down to the box's last row and the filter's reach below it (``jpeg.decode``),
    where the resize then reads the same pixels as from a full decode. Returns (image,
    box in its pixels)."""
    top, left, h, w = box
    scale = _dct_scale(box, size) if reduce else 1
    full = (-(-found.height // scale), -(-found.width // scale))
    rows = found.height if _vertical_first(*full, size, size) else \
        top + h + math.ceil(max(h / size, scale)) + 1
    fy, fx = full[0] / found.height, full[1] / found.width
    return (jpeg.decode(data, found, rows, scale),
            (left * fx, top * fy, (left + w) * fx, (top + h) * fy))


def _view(image: Image.Image, channels: int, size: int, source) -> np.ndarray:
    """``image``'s box ``source`` (left, top, right, bottom) resized to ``size``, uint8."""
    with image:
        out = images.convert(image, channels).resize((size, size), Image.BILINEAR, box=source)
    return images.pixels(out, channels)


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
    """``centre_crop`` of a stored example: torchvision's pixels, decoding only the rows
    the crop needs; uint8 (size, size, C)."""
    if isinstance(data, np.ndarray):
        return centre_crop(images.decode(data, channels), size, fraction)
    found = jpeg.frame(data)
    if found is None:
        with images.open_bytes(data) as image:
            plan = _centre_plan(image.height, image.width, size, fraction)
            return images.pixels(_centred(images.convert(image, channels), plan, size), channels)
    plan = _centre_plan(found.height, found.width, size, fraction, found)
    with jpeg.decode(data, found, plan.rows) as image:
        if image.height == found.height:  # Whole after all (bytes after EOI): its plan.
            plan = _centre_plan(found.height, found.width, size, fraction)
        return images.pixels(_centred(images.convert(image, channels), plan, size), channels)
