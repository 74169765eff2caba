"""A raw store's training crops: boxes cut on the host, resized on the device.

A pre-resized ``raw`` store needs no decoding, so its host work was reading the record
and PIL's resize of the crop box to the output size. Here the host only copies the box
(and the few pixels around it the filter reads) onto a fixed canvas, and the step
resizes every canvas of the batch at once (``resized``), with PIL's bilinear filter
(``Resample.c``) and its integer arithmetic, the weights computed in float32 (PIL: double):
within 2 levels of 255 of PIL's pixels.

A canvas is ``(side + 1, side, C)`` uint8: the region's pixels at its top-left, and in
its last row the region's height and width, the box's top and left in the region, and
the box's height and width, each a big-endian uint16 in channel 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from resnet_flax.data import datasets

_FIELDS = 6  # Region height, width; box top, left, height, width.
_BITS = 22  # PIL's fixed-point fraction for resampling weights (PRECISION_BITS).
_ONE = 1 << _BITS


def run_side(config) -> int:
    """The canvas side of a run whose raw store's training crops the device resizes
    (``config.crop_resize``; "auto": unless the devices are CPUs, where PIL on the host
    is the faster); 0 when the host resizes them, or there is no raw store to crop."""
    spec = datasets.get(config.dataset, config.data_dir or None)
    where = config.crop_resize
    if where == "auto":
        where = "host" if jax.default_backend() == "cpu" else "device"
    # A policy works on the finished crop, so the host makes it.
    if (where == "host" or config.input != "stream" or config.crop != "inception"
            or not spec.raw_store_side or config.auto_augment):
        return 0
    return side(spec.raw_store_side, config.crop_size, tuple(config.crop_ratio))


def box_limit(shorter: int, ratio: tuple[float, float]) -> int:
    """The longest side of a crop box drawn on an image whose shorter side is at most
    ``shorter``, with aspect ratios in ``ratio`` (torchvision's draw, rounding included)."""
    return math.ceil(shorter * max(ratio[1], 1 / ratio[0])) + 2


def _margin(box_side: int, size: int) -> int:
    """The pixels beyond a box side that PIL's filter may read when resizing to ``size``."""
    return math.ceil(box_side / size) + 1


def side(shorter: int, size: int, ratio: tuple[float, float]) -> int:
    """The canvas side that holds any box of a ``shorter``-px store with its margin."""
    longest = box_limit(shorter, ratio)
    return longest + 2 * _margin(longest, size)


def place(canvas: np.ndarray, image: np.ndarray, box: tuple[int, int, int, int],
          size: int) -> None:
    """Writes ``image``'s ``box`` (top, left, h, w), with the margin the resize to
    ``size`` reads (clipped to the image), and the header, onto ``canvas``."""
    top, left, h, w = box
    margin = _margin(max(h, w), size)
    r0, c0 = max(top - margin, 0), max(left - margin, 0)
    r1 = min(top + h + margin, image.shape[0])
    c1 = min(left + w + margin, image.shape[1])
    room = canvas.shape[1]
    if r1 - r0 > room or c1 - c0 > room:
        raise ValueError(f"a {h}x{w} crop box of a {image.shape[0]}x{image.shape[1]} stored "
                         f"image does not fit the {room}-px canvas: the store's images are "
                         "larger than its record says; build it again")
    canvas[:r1 - r0, :c1 - c0] = image[r0:r1, c0:c1]
    header = np.array([r1 - r0, c1 - c0, top - r0, left - c0, h, w], ">u2")
    canvas[room, :2 * _FIELDS, 0] = header.view(np.uint8)


def _taps(start, length, extent, size: int, taps: int):
    """PIL's bilinear coefficients (``precompute_coeffs``) resizing ``length`` pixels from
    ``start`` of a line of ``extent`` to ``size``: (first pixel (size,), weights
    (size, taps)), each window cut to the line as PIL cuts it to the image."""
    scale = length / size
    filter_scale = jnp.maximum(scale, 1.0)
    centre = start + (jnp.arange(size) + 0.5) * scale
    first = jnp.maximum(jnp.floor(centre - filter_scale + 0.5), 0)
    end = jnp.minimum(jnp.floor(centre + filter_scale + 0.5), extent)
    pixel = first[:, None] + jnp.arange(taps)
    weight = jnp.maximum(1 - jnp.abs((pixel - centre[:, None] + 0.5) / filter_scale), 0)
    weight = jnp.where(pixel < end[:, None], weight, 0)
    total = jnp.maximum(weight.sum(1, keepdims=True), 1e-12)  # An empty box: zeros.
    # PIL's 8-bit passes weigh in integers: each weight rounded to 22 fractional bits.
    return first.astype(jnp.int32), jnp.floor(weight / total * _ONE + 0.5).astype(jnp.int32)


def _pass(lines: jnp.ndarray, first: jnp.ndarray, weight: jnp.ndarray) -> jnp.ndarray:
    """One pass along axis 0 of ``lines`` (L, ..., C) int32: output i is the weighted sum
    of lines ``first[i]`` on, rounded to uint8 levels as PIL's fixed point rounds it (the
    weights sum to one, so the sum stays within int32)."""
    total = jnp.int32(_ONE // 2)
    for tap in range(weight.shape[1]):  # A tap at a time: no (size, taps, ...) gather.
        index = jnp.minimum(first + tap, lines.shape[0] - 1)
        total = total + lines[index] * weight[:, tap].reshape((-1,) + (1,) * (lines.ndim - 1))
    return jnp.clip(total >> _BITS, 0, 255)


def resized(canvases: jnp.ndarray, size: int) -> jnp.ndarray:
    """Every canvas's box resized to ``size`` x ``size`` (uint8 NHWC), PIL's way: the
    horizontal pass, rounded, then the vertical one."""
    room = canvases.shape[2]
    taps = 2 * math.ceil(room / size) + 2  # The widest window: 2 * filter scale + 1.
    raw = canvases[:, room, :2 * _FIELDS, 0].astype(jnp.int32)
    fields = raw[:, 0::2] * 256 + raw[:, 1::2]

    def one(canvas, f):
        pixels = canvas[:room].astype(jnp.int32)
        first, weight = _taps(f[3], f[5], f[1], size, taps)
        across = _pass(pixels.swapaxes(0, 1), first, weight)  # (size, room, C)
        first, weight = _taps(f[2], f[4], f[0], size, taps)
        return _pass(across.swapaxes(0, 1), first, weight).astype(jnp.uint8)

    return jax.vmap(one)(canvases, fields)
