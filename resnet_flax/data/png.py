"""PNG encoding through Pillow for TFDS builds, instead of a TensorFlow graph per image.

TFDS encodes each in-memory uint8 image with ``tf.image.encode_png`` run through a graph
runner, a large part of a small dataset's build (BENCHMARKS.md, "Dataset build").
Pillow writes the same pixels (PNG is lossless: all 70,000 decode equal to those of
TFDS's own build, and ``tests/data/test_data.py`` finds the original files' images in a
build) in a fraction of the time. TFDS keeps its own checks of each array's shape and
dtype, and every other format (JPEG, float images) stays TFDS's own.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from PIL import Image

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def encode(image: np.ndarray) -> bytes:
    """``image`` (H, W, 1|3|4, uint8) as PNG bytes."""
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(pixels, _MODES[image.shape[-1]]).save(buffer, format="PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def pillow_encoding():
    """Within the block, TFDS encodes uint8 PNG images with ``encode``."""
    from tensorflow_datasets.core.features import image_feature

    encoder = getattr(image_feature, "_ImageEncoder", None)
    tfds_encode = getattr(encoder, "_encode_image", None)
    validate = getattr(image_feature, "_validate_np_array", None)
    if tfds_encode is None or validate is None:  # Another TFDS layout: its own encoder.
        yield
        return

    def encode_image(self, np_image: np.ndarray) -> bytes:
        if (type(self) is not encoder or self.encoding_format != "png"
                or np_image.dtype != np.uint8 or np_image.ndim != 3
                or np_image.shape[-1] not in _MODES):
            return tfds_encode(self, np_image)
        validate(np_image, shape=self.shape, dtype=self.np_dtype)
        return encode(np_image)

    encoder._encode_image = encode_image
    try:
        yield
    finally:
        encoder._encode_image = tfds_encode
