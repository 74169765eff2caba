"""The evaluation view is torchvision's ``Resize(256)`` + ``CenterCrop(224)``, pixel for
pixel, though it resizes only the crop along the shorter side and decodes a landscape
JPEG only down to the crop's last rows: every image shape and kind, and the shapes where
Pillow would change its pass order, which fall back to the whole resize."""

import io

import numpy as np
import pytest
from PIL import Image

from resnet_flax.data import crops, images, jpeg

SAVES = {"4:2:0": {}, "4:2:2": {"subsampling": 1}, "4:4:4": {"subsampling": 0},
         "progressive": {"progressive": True}, "png": {"format": "PNG"}}


def encoded(h: int, w: int, mode: str = "RGB", seed: int = 0, **save) -> bytes:
    """An image file of smooth random colours (its rows differ, so a wrong row shows)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (h // 6 + 1, w // 6 + 1, 3))
    image = Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.BILINEAR)
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, save.pop("format", "JPEG"), quality=90, **save)
    return buffer.getvalue()


def torchvision_eval_view(image: Image.Image, size=224, resize=256) -> np.ndarray:
    """A port of torchvision's ``Resize(256)`` + ``CenterCrop(224)`` on a PIL image."""
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = resize, int(resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    image = image.resize((new_w, new_h), Image.BILINEAR)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)))


def expected_view(data: bytes, channels: int, size: int, fraction: float) -> np.ndarray:
    with images.open_bytes(data) as image:
        whole = image.convert("RGB" if channels == 3 else "L")
        out = torchvision_eval_view(whole, size, int(round(size / fraction)))
    return out.reshape(size, size, channels)


@pytest.mark.parametrize("shape", [(375, 500), (500, 333), (256, 256), (300, 301)])
def test_the_evaluation_view_is_torchvisions_resize_and_centre_crop(shape):
    data = encoded(*shape)
    expected = expected_view(data, 3, 224, 0.875)
    np.testing.assert_array_equal(crops.eval_view(data, 3, 224), expected)
    np.testing.assert_array_equal(crops.centre_crop(images.decode(data, 3), 224), expected)


def shapes(count: int, seed: int) -> list[tuple[int, int]]:
    """Landscape, portrait, near-square images around the crop (where Pillow's pass
    order turns on a few rows) and images smaller than the resize (upscaled)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        if k % 3 == 0:
            side = int(rng.integers(200, 300))
            out.append((side, side + int(rng.integers(0, 40))))
        else:
            out.append((int(rng.integers(60, 700)), int(rng.integers(60, 700))))
    return out


@pytest.mark.parametrize("kind", SAVES)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_the_evaluation_view_equals_the_whole_resize_and_crop_on_every_shape(kind, mode):
    for k, (h, w) in enumerate(shapes(8, seed=len(kind) + len(mode))):
        data = encoded(h, w, mode, seed=k, **SAVES[kind])
        for size in (224, 112, 160, 32):  # 160: the resize is to 183, not a power of two.
            for channels in (1, 3):
                np.testing.assert_array_equal(
                    crops.eval_view(data, channels, size, 0.875),
                    expected_view(data, channels, size, 0.875), err_msg=f"{h}x{w} {size}")


def test_only_the_crop_is_resized_along_the_shorter_side_and_decoded_down_to_it(monkeypatch):
    heights, decode = [], jpeg.decode

    def recorded(*args):
        image = decode(*args)
        heights.append(image.height)
        return image

    monkeypatch.setattr(jpeg, "decode", recorded)
    landscape = crops._centre_plan(600, 800, 224, 0.875)
    assert landscape.out == (341, 224) and landscape.rows < 600
    crops.eval_view(encoded(600, 800), 3, 224)  # 4:2:0, so 16-row MCUs: 592 rows.
    assert heights == [jpeg.decoded_height(jpeg.frame(encoded(600, 800)), landscape.rows)]
    assert heights[0] < 600
    assert crops._centre_plan(500, 375, 224, 0.875).out == (224, 341)
    # Not a power of two (183), or an order Pillow would change (241 rows to 224 is
    # vertical first; 241 to 256, horizontal): the whole resize.
    assert crops._centre_plan(375, 500, 160, 0.875).out == (244, 183)
    assert crops._centre_plan(241, 243, 224, 0.875).out == (258, 256)


@pytest.mark.parametrize("shape", [(225, 240), (225, 252)])
def test_a_jpeg_decoded_whole_for_bytes_after_its_end_keeps_torchvisions_pixels(shape):
    # Shortened, these would resize in Pillow's order for the whole image; decoded whole
    # (a stream that does not end with EOI), the same box would flip the order.
    data = encoded(*shape, mode="L") + b"bytes after the end marker"
    np.testing.assert_array_equal(crops.eval_view(data, 1, 224),
                                  expected_view(data, 1, 224, 0.875))
