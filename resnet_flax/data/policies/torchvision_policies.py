"""torchvision's TrivialAugmentWide and RandAugment on PIL images, op for op.

Ported from torchvision 0.28.0: ``torchvision/transforms/autoaugment.py`` (``_apply_op``, each
policy's ``_augmentation_space`` and ``forward``) and the PIL paths of
``torchvision/transforms/functional.py`` (``affine``, ``rotate``, ``_get_inverse_affine_matrix``)
and ``torchvision/transforms/_functional_pil.py`` (``_parse_fill`` and the PIL calls of each op).
The one deliberate difference: the draws come from a numpy ``Generator`` the caller passes in,
not from torch's global RNG, so a run is reproducible from its seed (in the same order: op
index, then magnitude bin for TrivialAugmentWide, then sign for signed ops).

Images are PIL images in mode "L" or "RGB", as torchvision expects; an image size is
``(height, width)``, as torchvision's ``_augmentation_space`` takes it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

# op name -> (magnitudes, signed); () where torchvision holds a 0-d tensor: the op takes 0.0.
MagnitudeSpace = dict[str, tuple[tuple[float, ...], bool]]
Fill = float | Sequence[float] | None

NO_MAGNITUDE: tuple[float, ...] = ()
GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}


@functools.lru_cache(maxsize=256)
def _linspace_float32(start: float, end: float, steps: int) -> tuple[float, ...]:
    """``torch.linspace(start, end, steps)`` (float32) as torch's CPU kernel computes it."""
    start32, end32 = np.float32(start), np.float32(end)
    if steps == 1:
        return (float(start32),)
    step = (end32 - start32) / np.float32(steps - 1)
    index = np.arange(steps)
    # The kernel fills the first half up from start, the rest down from end, each value one
    # fused multiply-add in its AVX2/AVX512 builds (its scalar build rounds twice and differs in
    # the last bit); a float32 times an index is exact in float64, and so is the sum for these
    # tables' ranges, so rounding once to float32 gives the fused result.
    up_from_start = np.float64(start32) + np.float64(step) * index
    down_from_end = np.float64(end32) - np.float64(step) * (steps - 1 - index)
    values = np.where(index < steps // 2, up_from_start, down_from_end).astype(np.float32)
    return tuple(float(value) for value in values)


@functools.lru_cache(maxsize=64)
def _posterize_bits(num_bins: int, levels: int) -> tuple[float, ...]:
    """``8 - (torch.arange(num_bins) / ((num_bins - 1) / levels)).round().int()``."""
    # torch divides the int64 arange by the Python float in float32, and rounds half to even.
    quotient = np.arange(num_bins, dtype=np.float32) / np.float32((num_bins - 1) / levels)
    return tuple(float(8 - bits) for bits in np.round(quotient).astype(np.int32))


def trivial_augment_wide_space(num_bins: int) -> MagnitudeSpace:
    """TrivialAugmentWide's ``_augmentation_space``: its wide ranges, the same at any size."""
    return {
        "Identity": (NO_MAGNITUDE, False),
        "ShearX": (_linspace_float32(0.0, 0.99, num_bins), True),
        "ShearY": (_linspace_float32(0.0, 0.99, num_bins), True),
        "TranslateX": (_linspace_float32(0.0, 32.0, num_bins), True),
        "TranslateY": (_linspace_float32(0.0, 32.0, num_bins), True),
        "Rotate": (_linspace_float32(0.0, 135.0, num_bins), True),
        "Brightness": (_linspace_float32(0.0, 0.99, num_bins), True),
        "Color": (_linspace_float32(0.0, 0.99, num_bins), True),
        "Contrast": (_linspace_float32(0.0, 0.99, num_bins), True),
        "Sharpness": (_linspace_float32(0.0, 0.99, num_bins), True),
        "Posterize": (_posterize_bits(num_bins, 6), False),
        "Solarize": (_linspace_float32(255.0, 0.0, num_bins), False),
        "AutoContrast": (NO_MAGNITUDE, False),
        "Equalize": (NO_MAGNITUDE, False),
    }


def rand_augment_space(num_bins: int, image_size: tuple[int, int]) -> MagnitudeSpace:
    """RandAugment's ``_augmentation_space``; translation scales with ``(height, width)``."""
    height, width = image_size
    return {
        "Identity": (NO_MAGNITUDE, False),
        "ShearX": (_linspace_float32(0.0, 0.3, num_bins), True),
        "ShearY": (_linspace_float32(0.0, 0.3, num_bins), True),
        "TranslateX": (_linspace_float32(0.0, 150.0 / 331.0 * width, num_bins), True),
        "TranslateY": (_linspace_float32(0.0, 150.0 / 331.0 * height, num_bins), True),
        "Rotate": (_linspace_float32(0.0, 30.0, num_bins), True),
        "Brightness": (_linspace_float32(0.0, 0.9, num_bins), True),
        "Color": (_linspace_float32(0.0, 0.9, num_bins), True),
        "Contrast": (_linspace_float32(0.0, 0.9, num_bins), True),
        "Sharpness": (_linspace_float32(0.0, 0.9, num_bins), True),
        "Posterize": (_posterize_bits(num_bins, 4), False),
        "Solarize": (_linspace_float32(255.0, 0.0, num_bins), False),
        "AutoContrast": (NO_MAGNITUDE, False),
        "Equalize": (NO_MAGNITUDE, False),
    }


def _resampling(interpolation: str) -> Image.Resampling:
    if interpolation not in RESAMPLING:
        raise ValueError(
            f"interpolation must be one of {sorted(RESAMPLING)}, not {interpolation!r}"
        )
    return RESAMPLING[interpolation]


def _parse_fill(fill: Fill, image: Image.Image) -> float | tuple[float, ...]:
    """The ``fillcolor`` torchvision's ``_parse_fill`` gives PIL: a whole number for each band."""
    num_channels = len(image.getbands())
    if fill is None:
        fill = 0
    if isinstance(fill, (int, float)) and num_channels > 1:
        fill = tuple([fill] * num_channels)
    if isinstance(fill, (list, tuple)):
        if len(fill) == 1:
            fill = fill * num_channels
        elif len(fill) != num_channels:
            raise ValueError(
                "The number of elements in 'fill' does not match the number of channels of the "
                f"image ({len(fill)} != {num_channels})"
            )
        fill = tuple(fill)
    if image.mode != "F":
        # int(), so a fractional fill truncates, as in torchvision.
        fill = tuple(int(x) for x in fill) if isinstance(fill, tuple) else int(fill)
    return fill


def _inverse_affine_matrix(
    center: Sequence[float],
    angle: float,
    translate: Sequence[float],
    scale: float,
    shear: Sequence[float],
) -> list[float]:
    """``_get_inverse_affine_matrix`` (inverted): the output-to-input map PIL's AFFINE takes."""
    rot = math.radians(angle)
    sx = math.radians(shear[0])
    sy = math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    matrix = [d, -b, 0.0, -c, a, 0.0]
    matrix = [x / scale for x in matrix]
    matrix[2] += matrix[0] * (-cx - tx) + matrix[1] * (-cy - ty)
    matrix[5] += matrix[3] * (-cx - tx) + matrix[4] * (-cy - ty)
    matrix[2] += cx
    matrix[5] += cy
    return matrix


def _affine(
    image: Image.Image,
    translate: list[int],
    shear: list[float],
    interpolation: str,
    fill: Fill,
    center: list[float] | None = None,
) -> Image.Image:
    """``F.affine`` with angle 0 and scale 1, on a PIL image."""
    if center is None:
        # torchvision's PIL path: the centre without the half-pixel offset.
        center = [image.width * 0.5, image.height * 0.5]
    matrix = _inverse_affine_matrix(center, 0.0, translate, 1.0, shear)
    return image.transform(
        image.size,
        Image.Transform.AFFINE,
        matrix,
        _resampling(interpolation),
        fillcolor=_parse_fill(fill, image),
    )


def _apply_geometric_op(
    image: Image.Image, op_name: str, magnitude: float, interpolation: str, fill: Fill
) -> Image.Image:
    if op_name in ("ShearX", "ShearY"):
        # Sheared by atan(magnitude) degrees about the top-left corner: x' = x + magnitude * y.
        angle = math.degrees(math.atan(magnitude))
        shear = [angle, 0.0] if op_name == "ShearX" else [0.0, angle]
        return _affine(image, [0, 0], shear, interpolation, fill, center=[0, 0])
    if op_name == "TranslateX":
        return _affine(image, [int(magnitude), 0], [0.0, 0.0], interpolation, fill)
    if op_name == "TranslateY":
        return _affine(image, [0, int(magnitude)], [0.0, 0.0], interpolation, fill)
    if op_name == "Rotate":
        resampling = _resampling(interpolation)
        return image.rotate(magnitude, resampling, False, None, fillcolor=_parse_fill(fill, image))
    raise ValueError(f"The provided operator {op_name} is not recognized.")


def _apply_colour_op(image: Image.Image, op_name: str, magnitude: float) -> Image.Image:
    if op_name == "Brightness":
        return ImageEnhance.Brightness(image).enhance(1.0 + magnitude)
    if op_name == "Color":
        return ImageEnhance.Color(image).enhance(1.0 + magnitude)
    if op_name == "Contrast":
        return ImageEnhance.Contrast(image).enhance(1.0 + magnitude)
    if op_name == "Sharpness":
        return ImageEnhance.Sharpness(image).enhance(1.0 + magnitude)
    if op_name == "Posterize":
        bits = int(magnitude)
        if not 0 <= bits <= 8:
            raise ValueError(f"The number if bits should be between 0 and 8. Got {bits}")
        return ImageOps.posterize(image, bits)
    if op_name == "Solarize":
        # On a PIL image the threshold is in 0..255 (the tables give 255.0 down to 0.0):
        # values >= threshold are inverted, so 255.0 inverts only 255 and 0.0 inverts all.
        return ImageOps.solarize(image, magnitude)
    if op_name == "AutoContrast":
        return ImageOps.autocontrast(image)
    if op_name == "Equalize":
        return ImageOps.equalize(image)
    if op_name == "Invert":
        return ImageOps.invert(image)
    if op_name == "Identity":
        return image
    raise ValueError(f"The provided operator {op_name} is not recognized.")


def apply_op(
    image: Image.Image,
    op_name: str,
    magnitude: float,
    interpolation: str = "nearest",
    fill: Fill = None,
) -> Image.Image:
    """torchvision's ``_apply_op`` on a PIL image; ``magnitude`` already signed."""
    if op_name in GEOMETRIC_OPS:
        return _apply_geometric_op(image, op_name, magnitude, interpolation, fill)
    return _apply_colour_op(image, op_name, magnitude)


def _apply_ops(
    image: Image.Image, ops: list[tuple[str, float]], interpolation: str, fill: Fill
) -> Image.Image:
    for op_name, magnitude in ops:
        image = apply_op(image, op_name, magnitude, interpolation, fill)
    return image


def _check_settings(num_magnitude_bins: int, interpolation: str) -> None:
    # One bin makes Posterize's table divide by zero in torchvision.
    if num_magnitude_bins < 2:
        raise ValueError(f"num_magnitude_bins must be at least 2, not {num_magnitude_bins}")
    _resampling(interpolation)


@dataclasses.dataclass(frozen=True)
class TrivialAugmentWide:
    """One op, uniformly chosen, at a uniformly chosen magnitude bin, signed at random."""

    num_magnitude_bins: int = 31
    interpolation: str = "nearest"
    fill: Fill = None

    def __post_init__(self) -> None:
        _check_settings(self.num_magnitude_bins, self.interpolation)

    def draw(
        self, rng: np.random.Generator, image_size: tuple[int, int]
    ) -> list[tuple[str, float]]:
        """The (op name, signed magnitude) to apply, drawn as torchvision's ``forward`` draws."""
        del image_size  # TrivialAugmentWide's ranges do not depend on it.
        space = trivial_augment_wide_space(self.num_magnitude_bins)
        op_name = list(space)[int(rng.integers(len(space)))]
        magnitudes, signed = space[op_name]
        magnitude = magnitudes[int(rng.integers(len(magnitudes)))] if magnitudes else 0.0
        if signed and rng.integers(2):
            magnitude *= -1.0
        return [(op_name, magnitude)]

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        ops = self.draw(rng, (image.height, image.width))
        return _apply_ops(image, ops, self.interpolation, self.fill)


@dataclasses.dataclass(frozen=True)
class RandAugment:
    """``num_ops`` ops, each uniformly chosen, at bin ``magnitude``, signed at random."""

    num_ops: int = 2
    magnitude: int = 9
    num_magnitude_bins: int = 31
    interpolation: str = "nearest"
    fill: Fill = None

    def __post_init__(self) -> None:
        _check_settings(self.num_magnitude_bins, self.interpolation)
        if self.num_ops < 0:
            raise ValueError(f"num_ops must be at least 0, not {self.num_ops}")
        # torchvision indexes its tables with it: a negative one would count from the end.
        if not 0 <= self.magnitude < self.num_magnitude_bins:
            raise ValueError(
                f"magnitude must be in [0, {self.num_magnitude_bins}), not {self.magnitude}"
            )

    def draw(
        self, rng: np.random.Generator, image_size: tuple[int, int]
    ) -> list[tuple[str, float]]:
        """The ``num_ops`` (op name, signed magnitude) pairs, drawn as torchvision's forward."""
        space = rand_augment_space(self.num_magnitude_bins, image_size)
        op_names = list(space)
        ops = []
        for _ in range(self.num_ops):
            op_name = op_names[int(rng.integers(len(op_names)))]
            magnitudes, signed = space[op_name]
            magnitude = magnitudes[self.magnitude] if magnitudes else 0.0
            if signed and rng.integers(2):
                magnitude *= -1.0
            ops.append((op_name, magnitude))
        return ops

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        # Every op keeps the image's size, so drawing all ops first draws what torchvision does.
        ops = self.draw(rng, (image.height, image.width))
        return _apply_ops(image, ops, self.interpolation, self.fill)
