"""A training crop decodes a JPEG only down to the rows it needs, with the pixels of a
full decode: every kind of JPEG Pillow writes, every DCT scale, and the tall images Pillow
resizes vertical pass first; a truncated file still fails."""

import io

import numpy as np
import pytest
from PIL import Image

from resnet_flax.data import crops, images, jpeg

KINDS = {"4:2:0": {}, "4:2:2": {"subsampling": 1}, "4:4:4": {"subsampling": 0},
         "progressive": {"progressive": True}, "restarts": {"restart_marker_rows": 1},
         "progressive restarts": {"progressive": True, "restart_marker_blocks": 3}}


def jpeg_bytes(h: int, w: int, mode: str = "RGB", seed: int = 0, **save) -> bytes:
    """A JPEG of smooth random colours (its rows differ, so a wrong row shows)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (h // 8 + 1, w // 8 + 1, 3))
    image = Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.BILINEAR)
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def full_decode_view(monkeypatch, seed, data, channels, size, reduce):
    """The crop from the whole image: decoded by ``Image.open`` (full scale), or with
    the same DCT scale, not shortened."""
    if not reduce:
        full = images.decode(data, channels)
        return crops.random_resized_crop(np.random.default_rng(seed), full, size)
    with monkeypatch.context() as m:
        m.setattr(jpeg, "shortened", lambda data, found, rows: data)
        return crops.train_view(np.random.default_rng(seed), data, channels, size,
                                reduce=reduce)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_a_shortened_decode_crops_the_same_pixels_as_a_full_one(monkeypatch, kind, mode):
    channels = 1 if mode == "L" else 3
    # Wide, tall (resized vertical pass first by Pillow 13), and large enough for 1/2 scale.
    for shape in ((333, 500), (500, 300), (1000, 600)):
        data = jpeg_bytes(*shape, mode, **KINDS[kind])
        for seed in range(6):
            for size, reduce in ((64, False), (224, True)):
                expected = full_decode_view(monkeypatch, seed, data, channels, size, reduce)
                got = crops.train_view(np.random.default_rng(seed), data, channels, size,
                                       reduce=reduce)
                np.testing.assert_array_equal(got, expected, err_msg=f"{shape} {seed}")


def test_the_frame_header_gives_the_size_and_mcu_height_and_shortening_cuts_rows():
    wide = jpeg.frame(jpeg_bytes(100, 150))
    assert (wide.height, wide.width, wide.mcu_height) == (100, 150, 16)
    assert jpeg.frame(jpeg_bytes(100, 150, subsampling=0)).mcu_height == 8
    assert jpeg.frame(jpeg_bytes(40, 40, "L")).mcu_height == 8
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    assert jpeg.frame(png.getvalue()) is None and jpeg.frame(b"\xff\xd8\xff") is None

    data = jpeg_bytes(100, 150)
    short = jpeg.shortened(data, wide, 20)  # 20 rows: two MCU rows, and one more.
    with images.open_bytes(short) as image:
        assert image.size == (150, 48)
        np.testing.assert_array_equal(np.asarray(image)[:32], images.decode(data, 3)[:32])
    assert jpeg.shortened(data, wide, 90) is data  # Nothing to save.


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_the_decoder_called_directly_gives_image_opens_pixels(mode, scale):
    data = jpeg_bytes(203, 301, mode, progressive=scale == 2)
    found = jpeg.frame(data)
    with images.open_bytes(data) as image:
        if scale > 1:
            image.draft(mode, (301 // scale, 203 // scale))
        expected = np.asarray(image)
    with jpeg.decode(data, found, found.height, scale) as image:
        assert image.mode == mode
        np.testing.assert_array_equal(np.asarray(image), expected)


def segments(data: bytes) -> list[bytes]:
    """A JPEG's header segments up to its first scan, and the rest."""
    out, at = [], 2
    while data[at + 1] != 0xDA:
        end = at + 2 + int.from_bytes(data[at + 2:at + 4], "big")
        out.append(data[at:end])
        at = end
    return out + [data[at:]]


def test_huffman_tables_before_the_frame_header_still_allow_a_shortened_decode():
    data = jpeg_bytes(300, 200)
    parts = segments(data)
    tables = [p for p in parts if p[1] == 0xC4]
    moved = b"\xff\xd8" + b"".join(tables + [p for p in parts if p[1] != 0xC4])
    found = jpeg.frame(moved)
    assert found is not None and moved.index(b"\xff\xc4") < found.height_at
    with jpeg.decode(moved, found, 40) as image:
        assert image.height < 300
        np.testing.assert_array_equal(np.asarray(image)[:40], images.decode(data, 3)[:40])


def test_a_truncated_jpeg_is_decoded_in_full_and_fails_as_before():
    data = jpeg_bytes(400, 300)
    cut = data[: len(data) // 2]
    found = jpeg.frame(cut)
    assert jpeg.shortened(cut, found, 10) is cut
    for seed in range(4):  # Crops near the top too: the bottom's damage is still found.
        with pytest.raises(OSError, match="truncated"):
            crops.train_view(np.random.default_rng(seed), cut, 3, 32)
