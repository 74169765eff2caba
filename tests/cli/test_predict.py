"""``python -m resnet_flax.predict``: image files classified by a trained run."""


import numpy as np
import pytest
from PIL import Image

from resnet_flax.cli import predict


def test_an_image_is_converted_and_resized_as_the_dataset_expects(tmp_path):
    rgba = np.zeros((40, 20, 4), np.uint8)
    rgba[..., 0] = 200  # Red where opaque...
    rgba[:, :10, 3] = 255  # ...on the left half; the right half is transparent.
    Image.fromarray(rgba).save(tmp_path / "a.png")
    gray = predict.read_image(tmp_path / "a.png", (28, 28, 1))
    assert gray.shape == (28, 28, 1) and gray.dtype == np.uint8
    assert gray[14, 2, 0] == round(0.299 * 200) and gray[14, 25, 0] == 0  # ITU-R 601-2 luma.
    rgb = predict.read_image(tmp_path / "a.png", (32, 32, 3))
    assert rgb.shape == (32, 32, 3) and tuple(rgb[16, 2]) == (200, 0, 0)
    same = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    Image.fromarray(same).save(tmp_path / "b.png")
    np.testing.assert_array_equal(predict.read_image(tmp_path / "b.png", (28, 28, 1))[..., 0],
                                  same)  # The dataset's size: not resampled.
    (tmp_path / "c.png").write_bytes(b"not an image")
    with pytest.raises(OSError):
        predict.read_image(tmp_path / "c.png", (28, 28, 1))




def test_a_16_bit_grey_png_is_read_at_its_brightness(tmp_path):
    grey = np.full((28, 28), 124 * 257, np.uint16)
    grey[:, :14] = 30 * 257
    Image.fromarray(grey).save(tmp_path / "wide.png")
    pixels = predict.read_image(tmp_path / "wide.png", (28, 28, 1))
    assert pixels[0, 0, 0] == 30 and pixels[0, 20, 0] == 124  # Not clipped to white.


def test_an_image_too_large_to_read_safely_is_one_error_not_a_traceback(tmp_path, monkeypatch):
    from PIL import Image

    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1,600 pixels: over twice that.
    with pytest.raises(ValueError, match="too large to read safely"):
        predict.read_image(tmp_path / "bomb.png", (28, 28, 1))
