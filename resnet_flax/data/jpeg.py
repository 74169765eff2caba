"""Decoding a JPEG only down to the last row a crop needs, with the same pixels.

A JPEG's rows decode in order, top to bottom, one MCU row (8 or 16 pixels) at a time,
and nothing above a row depends on what lies below it. A copy of the file whose frame
header (SOF) states a smaller height decodes exactly the first rows of the whole image:
libjpeg stops after them and skips the rest of the scan to the next marker. Only the
last MCU row of the shorter image can differ (chroma upsampling reads the row below),
so ``shortened`` keeps one MCU row more than asked.

Used only on a stream that ends with its EOI marker: a truncated file is decoded in
full, so it fails as it always did.
"""

from __future__ import annotations

import dataclasses
import struct

# Sequential and progressive frames, Huffman or arithmetic coded: each scan's MCU rows
# run top to bottom. Lossless and hierarchical frames are decoded in full.
_FRAMES = {0xC0, 0xC1, 0xC2, 0xC9, 0xCA}
_START_OF_SCAN = 0xDA
_END = b"\xff\xd9"


@dataclasses.dataclass(frozen=True)
class Frame:
    """A JPEG's frame header: where its height is written, the size, the MCU height."""

    height_at: int
    height: int
    width: int
    mcu_height: int


def frame(data: bytes) -> Frame | None:
    """The frame header of a JPEG that may be decoded shortened; None for anything else
    (another format, a lossless or hierarchical JPEG, a damaged header)."""
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
        if marker == _START_OF_SCAN or 0xC3 <= marker <= 0xCF and marker not in _FRAMES:
            return None
        if marker in _FRAMES:
            return _parse_frame(data, at)
        at += 2 + struct.unpack_from(">H", data, at + 2)[0]
    return None


def _parse_frame(data: bytes, at: int) -> Frame | None:
    if at + 10 > len(data):
        return None
    height, width = struct.unpack_from(">HH", data, at + 5)
    components = data[at + 9]
    factors = data[at + 10:at + 10 + 3 * components]
    if not height or not width or not components or len(factors) < 3 * components:
        return None  # A height given later (DNL), or a cut header: decoded in full.
    vertical = max(factors[3 * k + 1] & 0x0F for k in range(components))
    return Frame(at + 5, height, width, 8 * max(vertical, 1))


def shortened(data: bytes, found: Frame, rows: int) -> bytes:
    """``data`` stating a height of ``rows`` rounded up to whole MCU rows, plus one: its
    decode is the first rows of the whole image's, pixel for pixel. ``data`` itself when
    that is no shorter, or when the stream does not end with EOI."""
    mcu = found.mcu_height
    height = (-(-rows // mcu) + 1) * mcu
    if height >= found.height or not data.endswith(_END):
        return data
    copy = bytearray(data)
    struct.pack_into(">H", copy, found.height_at, height)
    return bytes(copy)
