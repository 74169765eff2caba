"""Decoding a JPEG only down to the last row a crop needs, with the same pixels.

A JPEG's rows decode in order, top to bottom, one MCU row (8 or 16 pixels) at a time,
and nothing above a row depends on what lies below it. A copy of the file whose frame
header (SOF) states a smaller height decodes exactly the first rows of the whole image:
libjpeg stops after them and skips the rest of the scan to the next marker. Only the
last MCU row of the shorter image can differ (chroma upsampling reads the row below),
so ``shortened`` keeps one MCU row more than asked.

Used only on a stream that ends with its EOI marker: a truncated file is decoded in
full, so it fails as it always did. ``decode`` hands the bytes straight to Pillow's
libjpeg decoder (``Image.frombytes``), with the mode Pillow itself gives the file, which
spares ``Image.open``'s reading of the file in chunks.
"""

from __future__ import annotations

import dataclasses
import struct

from PIL import Image

from resnet_flax.data import images

# Baseline, extended and progressive Huffman-coded frames (what cameras and encoders
# write): each scan's MCU rows run top to bottom. Arithmetic-coded, lossless and
# hierarchical frames (rare; none tested) are decoded in full.
_FRAMES = {0xC0, 0xC1, 0xC2}
_OTHER_FRAMES = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_START_OF_SCAN = 0xDA
_END = b"\xff\xd9"


@dataclasses.dataclass(frozen=True)
class Frame:
    """A JPEG's frame header: where its height is written, the size, the MCU height,
    and Pillow's mode for it ("L" or "RGB")."""

    height_at: int
    height: int
    width: int
    mcu_height: int
    mode: str


def frame(data: bytes) -> Frame | None:
    """The frame header of an 8-bit grey or colour JPEG, which may be decoded shortened;
    None for anything else (another format, CMYK, lossless or hierarchical JPEGs, a
    damaged header): Pillow opens those as it always has."""
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # A fill byte before the marker.
            at += 1
            continue
        if marker == _START_OF_SCAN or marker in _OTHER_FRAMES:
            return None
        if marker in _FRAMES:
            return _parse_frame(data, at)
        at += 2 + struct.unpack_from(">H", data, at + 2)[0]
    return None


def _parse_frame(data: bytes, at: int) -> Frame | None:
    if at + 10 > len(data):
        return None
    height, width = struct.unpack_from(">HH", data, at + 5)
    precision, components = data[at + 4], data[at + 9]
    factors = data[at + 10:at + 10 + 3 * components]
    if (not height or not width or precision != 8 or components not in (1, 3)
            or len(factors) < 3 * components):
        return None  # A height given later (DNL), or a cut header: decoded in full.
    vertical = max(factors[3 * k + 1] & 0x0F for k in range(components))
    return Frame(at + 5, height, width, 8 * max(vertical, 1), "L" if components == 1 else "RGB")


def decode(data: bytes, found: Frame, rows: int, scale: int = 1) -> Image.Image:
    """The JPEG ``data`` (its frame header ``found``) decoded down to at least ``rows``
    (``shortened``), at 1/``scale`` (1, 2, 4, 8: libjpeg's DCT scaling, which Pillow
    calls draft). A stream that does not end with EOI goes through ``Image.open``."""
    short = shortened(data, found, rows)
    if not short.endswith(_END):
        image = images.open_bytes(data)
        if scale > 1:  # Pillow's draft picks exactly ``scale`` for this request.
            image.draft(image.mode, (image.width // scale, image.height // scale))
        return image
    height = found.height if short is data else struct.unpack_from(">H", short,
                                                                   found.height_at)[0]
    size = (-(-found.width // scale), -(-height // scale))
    return Image.frombytes(found.mode, size, short, "jpeg", found.mode, "", scale, 0)


def shortened(data: bytes, found: Frame, rows: int) -> bytes:
    """``data`` stating a height of ``rows`` rounded up to whole MCU rows, plus one: its
    decode is the first rows of the whole image's, pixel for pixel. ``data`` itself when
    that is no shorter, or when the stream does not end with EOI."""
    height = decoded_height(found, rows)
    if height >= found.height or not data.endswith(_END):
        return data
    copy = bytearray(data)
    struct.pack_into(">H", copy, found.height_at, height)
    return bytes(copy)


def decoded_height(found: Frame, rows: int) -> int:
    """The height ``decode`` gives for ``rows`` (a stream that ends with EOI): whole MCU
    rows, one more than ``rows`` needs, or the image's own height if that is less."""
    mcu = found.mcu_height
    return min((-(-rows // mcu) + 1) * mcu, found.height)
