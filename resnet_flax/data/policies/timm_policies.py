"""timm's RandAugment on PIL images, ported from timm/data/auto_augment.py in timm 1.0.31:
``rand_augment_transform``'s config strings, ``AugmentOp`` and ``RandAugment``. The ops and
level functions are in timm_ops.py.

Only the source of randomness differs: timm draws with Python's ``random`` and numpy's
global state, a ``TimmRandAugment`` draws the same things in the same order with the same
distributions from the ``np.random.Generator`` it is called with, so a call is
deterministic given its rng. Per op: whether it applies (``random() > prob`` skips it,
drawn only when prob < 1), the magnitude (gaussian about ``magnitude`` with std
``magnitude_std``, or uniform in [0, magnitude] when the std is infinite, then clipped to
[0, magnitude_max or 10]), the sign of a signed level, the filter of an affine op, the
radius of GaussianBlurRand. ``draw`` makes the draws and ``apply`` the ops.

The hparams, as timm's ``create_transform`` (transforms_factory.py) passes them for a
``rand-...`` auto_augment at image size S with normalisation mean ``mean``:

- ``translate_const = int(S * 0.45)``, for TranslateX/TranslateY (pixels). No RandAugment
  transform set has those: its sets translate with TranslateXRel/YRel, by up to
  ``translate_pct`` of the image's width or height, which create_transform leaves at the
  level function's default 0.45 (it sets 0.3 for AugMix only).
- ``img_mean = tuple(min(255, round(255 * x)) for x in mean)``, the affine ops' fill:
  (124, 116, 104) for the ImageNet mean. timm's own default, without create_transform,
  is (128, 128, 128) and translate_const 250 (_HPARAMS_DEFAULT): this class's defaults.
- ``interpolation`` only when it is not 'random'; without it every affine op picks bilinear
  or bicubic at random. 'random' is the default of transforms_imagenet_train (and of
  train.py's --train-interpolation); create_transform called bare passes 'bilinear'.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
from PIL import Image

from resnet_flax.data.policies.timm_ops import (
    _FILL,
    _LEVEL_DENOM,
    _RANDOM_INTERPOLATION,
    BLUR_RADIUS_MAX,
    BLUR_RADIUS_MIN,
    GEOMETRIC,
    LEVEL_TO_ARG,
    NAME_TO_OP,
    SIGNED,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm.data.constants.IMAGENET_DEFAULT_MEAN

_RAND_TRANSFORMS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
    "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel",
    "TranslateYRel",
)  # timm leaves out 'Cutout': random erasing does it separately.

_RAND_INCREASING_TRANSFORMS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
    "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
    "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
    "TranslateYRel",
)

_RAND_3A = ("SolarizeIncreasing", "Desaturate", "GaussianBlur")

_RAND_WEIGHTED_3A = {
    "SolarizeIncreasing": 6, "Desaturate": 6, "GaussianBlur": 6, "Rotate": 3, "ShearX": 2,
    "ShearY": 2, "PosterizeIncreasing": 1, "AutoContrast": 1, "ColorIncreasing": 1,
    "SharpnessIncreasing": 1, "ContrastIncreasing": 1, "BrightnessIncreasing": 1,
    "Equalize": 1, "Invert": 1,
}

# timm: experimental weights, loosely after the relative improvements in the paper.
_RAND_WEIGHTED_0 = {
    "Rotate": 3, "ShearX": 2, "ShearY": 2, "TranslateXRel": 1, "TranslateYRel": 1,
    "ColorIncreasing": 0.25, "SharpnessIncreasing": 0.25, "AutoContrast": 0.25,
    "SolarizeIncreasing": 0.05, "SolarizeAdd": 0.05, "ContrastIncreasing": 0.05,
    "BrightnessIncreasing": 0.05, "Equalize": 0.05, "PosterizeIncreasing": 0.05,
    "Invert": 0.05,
}

_CHOICES = {"weights": _RAND_WEIGHTED_0, "3aw": _RAND_WEIGHTED_3A, "3a": _RAND_3A}

# timm takes any PIL filter name, but PIL's affine transforms refuse box, hamming and
# lanczos (ValueError at the first affine op): refused here when the policy is made.
_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}

_NUMERIC = {"m": int, "n": int, "p": float, "mstd": float, "mmax": int, "inc": int}

_VALID = (
    "m<int> magnitude (default 10), n<int> ops per image (2), p<float> probability of each op "
    "(0.5), mstd<float> magnitude std (0; > 100: uniform), mmax<int> magnitude bound (10), "
    "inc<int> nonzero for the increasing ops (0), t<set> another op set: weights, 3a or 3aw"
)


@dataclasses.dataclass(frozen=True)
class DrawnOp:
    """One op as it will run: its resolved arguments, and the magnitude they came from."""

    name: str  # timm's op name (timm_ops.NAME_TO_OP)
    magnitude: float  # after noise and clipping
    args: tuple  # the level function's output, and GaussianBlurRand's radius
    resample: int | None  # the PIL filter of an affine op, None for the others


@dataclasses.dataclass(frozen=True)
class TimmRandAugment:
    """timm's ``RandAugment`` of ``AugmentOp`` s that share prob, magnitude and hparams, as
    ``rand_augment_transform`` makes them. Holds names and numbers only, so it pickles."""

    ops: tuple[str, ...]
    num_layers: int = 2
    prob: float = 0.5
    magnitude: float = _LEVEL_DENOM
    magnitude_std: float = 0.0
    magnitude_max: int | None = None
    choice_weights: tuple[float, ...] | None = None  # None: choice with replacement
    fill: tuple[int, ...] = _FILL  # hparams 'img_mean'
    interpolation: str = "random"
    translate_const: int = 250
    translate_pct: float = 0.45

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        unknown = [name for name in self.ops if name not in NAME_TO_OP]
        if not self.ops or unknown:
            raise ValueError(f"ops {unknown or '()'} unknown; valid: {', '.join(NAME_TO_OP)}")
        if self.interpolation != "random" and self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation {self.interpolation!r} unknown; valid: random, "
                f"{', '.join(_INTERPOLATIONS)} (PIL's affine transforms take no other)")
        if self.choice_weights is not None:
            object.__setattr__(self, "choice_weights", tuple(self.choice_weights))
            if len(self.choice_weights) != len(self.ops):
                raise ValueError(f"{len(self.choice_weights)} weights for {len(self.ops)} ops")
            if self.num_layers > len(self.ops):  # numpy would refuse it at the first call
                raise ValueError(f"n={self.num_layers} ops without replacement from "
                                 f"{len(self.ops)}")

    def hparams(self) -> dict:
        """timm's hparams for these settings (what ``AugmentOp`` reads)."""
        hparams = dict(translate_const=self.translate_const, img_mean=self.fill,
                       translate_pct=self.translate_pct, magnitude_std=self.magnitude_std,
                       magnitude_max=self.magnitude_max)
        if self.interpolation != "random":
            hparams["interpolation"] = _INTERPOLATIONS[self.interpolation]
        return hparams

    def draw(self, rng: np.random.Generator) -> tuple[DrawnOp, ...]:
        """timm's ``RandAugment.__call__`` draws: the ops to run, then each op's own draws;
        the ops that their probability skips are left out."""
        weights = None if self.choice_weights is None else np.asarray(self.choice_weights)
        # timm: np.random.choice(self.ops, self.num_layers, replace=weights is None, p=weights)
        chosen = rng.choice(len(self.ops), self.num_layers, replace=weights is None, p=weights)
        drawn = [self._draw_op(self.ops[i], rng) for i in chosen]
        return tuple(op for op in drawn if op is not None)

    def _draw_op(self, name: str, rng: np.random.Generator) -> DrawnOp | None:
        """timm's ``AugmentOp.__call__`` draws, in its order."""
        if self.prob < 1.0 and rng.random() > self.prob:
            return None
        magnitude = self.magnitude
        if self.magnitude_std > 0:
            if self.magnitude_std == float("inf"):
                magnitude = rng.uniform(0, magnitude)  # timm: random.uniform
            else:
                magnitude = rng.normal(magnitude, self.magnitude_std)  # timm: random.gauss
        # timm's default bound is 10; mmax overrides it (and mmax0 means 10, as `or` does).
        upper_bound = self.magnitude_max or _LEVEL_DENOM
        magnitude = max(0.0, min(magnitude, upper_bound))
        level_fn = LEVEL_TO_ARG[name]
        args = ()
        if level_fn is not None and name in SIGNED:
            args = level_fn(magnitude, self.hparams(), rng.random() > 0.5)
        elif level_fn is not None:
            args = level_fn(magnitude, self.hparams())
        resample = self._resample(rng) if name in GEOMETRIC else None
        if name == "GaussianBlurRand":
            args += (rng.uniform(BLUR_RADIUS_MIN, BLUR_RADIUS_MAX * args[0]),)
        return DrawnOp(name, float(magnitude), args, resample)

    def _resample(self, rng: np.random.Generator) -> int:
        if self.interpolation == "random":  # timm: random.choice((BILINEAR, BICUBIC))
            return _RANDOM_INTERPOLATION[int(rng.integers(len(_RANDOM_INTERPOLATION)))]
        return _INTERPOLATIONS[self.interpolation]

    def apply(self, image: Image.Image, drawn: tuple[DrawnOp, ...]) -> Image.Image:
        """Runs the drawn ops in turn, as timm's ``AugmentOp`` calls them."""
        for op in drawn:
            kwargs = {"fillcolor": self.fill}
            if op.resample is not None:
                kwargs["resample"] = op.resample
            image = NAME_TO_OP[op.name](image, *op.args, **kwargs)
        return image

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return self.apply(image, self.draw(rng))


def _bad(config_str: str, part: str, why: str) -> ValueError:
    return ValueError(f"RandAugment config {config_str!r}: {part!r} {why}; "
                      f"valid sections after 'rand': {_VALID}")


def _sections(config_str: str) -> dict:
    """The config's values by key, read as timm reads them: the last m, n, p or inc wins,
    the first mstd, mmax or t (timm sets those with ``setdefault`` / ``if ... is None``).

    timm skips a section without a digit, asserts on an unknown key and falls back to the
    default ops for an unknown t<set>: here each of them is a ValueError."""
    config = config_str.split("-")
    if config[0] != "rand":
        raise _bad(config_str, config[0], "is not 'rand', which RandAugment's config starts with")
    values = {}
    for c in config[1:]:
        if c.startswith("t"):
            if c[1:] not in _CHOICES:
                raise _bad(config_str, c, "names no transform set")
            values.setdefault("t", c[1:])
            continue
        cs = re.split(r"(\d.*)", c)
        if len(cs) < 2:
            raise _bad(config_str, c, "has no number (timm would ignore it)")
        key, val = cs[:2]
        if key == "w":
            raise _bad(config_str, c, "uses 'w', which timm removed ('tweights' is not the same)")
        if key not in _NUMERIC:
            raise _bad(config_str, c, f"has an unknown key {key!r}")
        try:
            value = _NUMERIC[key](val)
        except ValueError:
            kind = "an int" if _NUMERIC[key] is int else "a number"
            raise _bad(config_str, c, f"needs {kind} after {key!r}") from None
        if key == "mstd" and value > 100:
            value = float("inf")  # timm: uniform sampling in [0, magnitude]
        if key in ("mstd", "mmax"):
            values.setdefault(key, value)
        else:
            values[key] = value
    return values


def parse_rand_config(config_str: str) -> dict:
    """``rand_augment_transform``'s reading of a config such as 'rand-m9-mstd0.5-inc1': the
    keyword arguments of ``TimmRandAugment`` that it sets."""
    values = _sections(config_str)
    increasing = bool(values.get("inc", 0))
    if "t" in values:
        transforms = _CHOICES[values["t"]]
    else:
        transforms = _RAND_INCREASING_TRANSFORMS if increasing else _RAND_TRANSFORMS
    choice_weights = None
    if isinstance(transforms, dict):  # timm's _get_weighted_transforms
        probs = np.array(tuple(transforms.values()))
        choice_weights = tuple(float(p) for p in probs / np.sum(probs))
    return dict(
        ops=tuple(transforms), num_layers=values.get("n", 2), prob=values.get("p", 0.5),
        magnitude=values.get("m", _LEVEL_DENOM), magnitude_std=values.get("mstd", 0.0),
        magnitude_max=values.get("mmax"), choice_weights=choice_weights,
    )


def rand_augment(config_str: str, image_size: int, mean: tuple[float, ...] = IMAGENET_MEAN,
                 interpolation: str = "random") -> TimmRandAugment:
    """The RandAugment that timm's ``create_transform(image_size, is_training=True,
    auto_augment=config_str, interpolation=interpolation, mean=mean)`` builds; 'random'
    is transforms_imagenet_train's default interpolation, not create_transform's."""
    return TimmRandAugment(
        **parse_rand_config(config_str),
        fill=tuple(min(255, round(255 * x)) for x in mean),
        interpolation=interpolation,
        translate_const=int(image_size * 0.45),
    )
