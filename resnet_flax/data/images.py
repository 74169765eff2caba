"""One rule for turning an image file of any mode into the uint8 pixels a model sees,
used by every reader: a dataset build, both input paths, ``predict`` and evaluation.

- 16- and 32-bit grey (a PNG's ``I;16``): scaled to 8 bits by value / 257, not clipped
  to white as Pillow's ``convert("L")`` does;
- transparency (``RGBA``, ``LA``, ``P`` with a transparent colour): composited on black;
- everything else (palette, CMYK, YCbCr, bilevel): Pillow's own conversion to ``L`` (one
  channel) or ``RGB`` (three).

A grey image in a 3-channel dataset has its one channel repeated, as ``convert("RGB")``
does. Nothing else changes the pixels: no EXIF rotation, no colour profile (as
torchvision's ``ImageFolder`` loader).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# torchvision's ImageFolder suffixes (case-insensitive).
SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_TRANSPARENT = ("RGBA", "LA", "P", "PA", "RGBa", "La")
_GREY = ("1", "L", "LA", "La", *_WIDE_GREY)


def is_image_file(name: str) -> bool:
    """Whether a file's name has one of ``SUFFIXES``."""
    return name.lower().endswith(SUFFIXES)


def is_grey(image: Image.Image) -> bool:
    """Whether ``image`` has one intensity channel (stored as grey, of any depth)."""
    return image.mode in _GREY


def convert(image: Image.Image, channels: int) -> Image.Image:
    """``image`` in mode ``L`` (``channels`` 1) or ``RGB`` (3), by the rule above; the
    image itself when it is in that mode already."""
    target = "L" if channels == 1 else "RGB"
    if image.mode == target:
        return image
    if image.mode in _WIDE_GREY:
        wide = np.asarray(image, np.float64)
        image = Image.fromarray(np.clip(np.rint(wide / 257), 0, 255).astype(np.uint8))
    if image.mode in _TRANSPARENT:
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image.alpha_composite(rgba)
    return image.convert(target)


def pixels(image: Image.Image, channels: int) -> np.ndarray:
    """``image`` as a uint8 (H, W, ``channels``) array, by the rule above."""
    image = convert(image, channels)  # tobytes: one copy, quicker than the array interface.
    return np.frombuffer(image.tobytes(), np.uint8).reshape(image.height, image.width, channels)


def open_bytes(data: bytes) -> Image.Image:
    """An image file's bytes opened (lazily: the header is read, the pixels on use)."""
    return Image.open(io.BytesIO(data))


def decode(data, channels: int) -> np.ndarray:
    """A stored example's image as uint8 (H, W, ``channels``): ``data`` is an encoded
    file's bytes, or pixels already (a decode-free store)."""
    if isinstance(data, np.ndarray):
        return data if data.shape[-1] == channels else np.repeat(data, channels, -1)
    with open_bytes(data) as image:
        return pixels(image, channels)
