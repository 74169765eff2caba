"""timm's augmentation ops and level functions on PIL images, ported line by line from
timm/data/auto_augment.py in timm 1.0.31 (its module docstring credits the TF TPU
EfficientNet AutoAugment code it adapts).

Only the source of randomness differs. timm draws inside these functions with Python's
``random``: the sign of a signed level (``_randomly_negate``), the filter of a geometric op
(``_interpolation`` picking bilinear or bicubic) and the blur radius of
``gaussian_blur_rand``. Here each of those is an argument, drawn beforehand by the
policy (timm_policies.py) from a ``np.random.Generator``, so the ops are deterministic
functions of the image and their arguments. Branches for PIL < 5.2 are left out: the
project needs pillow >= 10. ``posterize`` to fewer than 1 bit gives the black image that
Pillow < 13 gives, where Pillow 13 raises (see there).
"""

from __future__ import annotations

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

_FILL = (128, 128, 128)

_LEVEL_DENOM = 10.0  # denominator for conversion from 'Mx' magnitude scale to fractional level

_HPARAMS_DEFAULT = dict(translate_const=250, img_mean=_FILL)

_RANDOM_INTERPOLATION = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)
_DEFAULT_INTERPOLATION = Image.Resampling.BICUBIC


def _check_args_tf(kwargs):
    # timm's _interpolation draws the filter here (random.choice) when given a tuple; the
    # policy draws it beforehand, so only one filter is taken.
    resample = kwargs.pop("resample", _DEFAULT_INTERPOLATION)
    if isinstance(resample, (list, tuple)):
        raise TypeError(f"resample must be one PIL filter, drawn beforehand, not {resample!r}")
    kwargs["resample"] = resample


def shear_x(img, factor, **kwargs):
    _check_args_tf(kwargs)
    return img.transform(img.size, Image.AFFINE, (1, factor, 0, 0, 1, 0), **kwargs)


def shear_y(img, factor, **kwargs):
    _check_args_tf(kwargs)
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, factor, 1, 0), **kwargs)


def translate_x_rel(img, pct, **kwargs):
    pixels = pct * img.size[0]
    _check_args_tf(kwargs)
    return img.transform(img.size, Image.AFFINE, (1, 0, pixels, 0, 1, 0), **kwargs)


def translate_y_rel(img, pct, **kwargs):
    pixels = pct * img.size[1]
    _check_args_tf(kwargs)
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, pixels), **kwargs)


def translate_x_abs(img, pixels, **kwargs):
    _check_args_tf(kwargs)
    return img.transform(img.size, Image.AFFINE, (1, 0, pixels, 0, 1, 0), **kwargs)


def translate_y_abs(img, pixels, **kwargs):
    _check_args_tf(kwargs)
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, pixels), **kwargs)


def rotate(img, degrees, **kwargs):
    _check_args_tf(kwargs)
    return img.rotate(degrees, **kwargs)


def auto_contrast(img, **__):
    return ImageOps.autocontrast(img)


def invert(img, **__):
    return ImageOps.invert(img)


def equalize(img, **__):
    return ImageOps.equalize(img)


def solarize(img, thresh, **__):
    return ImageOps.solarize(img, thresh)


def solarize_add(img, add, thresh=128, **__):
    lut = []
    for i in range(256):
        if i < thresh:
            lut.append(min(255, i + add))
        else:
            lut.append(i)

    if img.mode in ("L", "RGB"):
        if img.mode == "RGB" and len(lut) == 256:
            lut = lut + lut + lut
        return img.point(lut)

    return img


def posterize(img, bits_to_keep, **__):
    if bits_to_keep >= 8:
        return img
    if bits_to_keep < 1:
        # Deviation: PosterizeIncreasing keeps 0 bits at magnitude 10 (and fewer above), as
        # can Posterize below 2.5. Pillow < 13 then masked every bit away, a black image (as
        # TF's posterize gives); Pillow 13 raises instead, which would end a training run.
        return img.point([0] * 256 * len(img.getbands()))
    return ImageOps.posterize(img, bits_to_keep)


def contrast(img, factor, **__):
    return ImageEnhance.Contrast(img).enhance(factor)


def color(img, factor, **__):
    return ImageEnhance.Color(img).enhance(factor)


def brightness(img, factor, **__):
    return ImageEnhance.Brightness(img).enhance(factor)


def sharpness(img, factor, **__):
    return ImageEnhance.Sharpness(img).enhance(factor)


def gaussian_blur(img, factor, **__):
    img = img.filter(ImageFilter.GaussianBlur(radius=factor))
    return img


def gaussian_blur_rand(img, factor, radius, **__):
    # timm draws radius = random.uniform(0.1, 2.0 * factor) here; the policy draws it.
    img = img.filter(ImageFilter.GaussianBlur(radius=radius))
    return img


def desaturate(img, factor, **_):
    factor = min(1.0, max(0.0, 1.0 - factor))
    # enhance factor 0 = grayscale, 1.0 = no-change
    return ImageEnhance.Color(img).enhance(factor)


def _randomly_negate(v, negate):
    # timm: -v if random.random() > 0.5 else v; the policy makes that draw.
    return -v if negate else v


def _rotate_level_to_arg(level, _hparams, negate):
    # range [-30, 30]
    level = (level / _LEVEL_DENOM) * 30.0
    level = _randomly_negate(level, negate)
    return (level,)


def _enhance_level_to_arg(level, _hparams):
    # range [0.1, 1.9]
    return ((level / _LEVEL_DENOM) * 1.8 + 0.1,)


def _enhance_increasing_level_to_arg(level, _hparams, negate):
    # the 'no change' level is 1.0, moving away from it towards 0. or 2.0 increases the blend;
    # range [0.1, 1.9] if level <= _LEVEL_DENOM
    level = (level / _LEVEL_DENOM) * 0.9
    level = max(0.1, 1.0 + _randomly_negate(level, negate))  # keep it >= 0.1
    return (level,)


def _minmax_level_to_arg(level, _hparams, min_val=0.0, max_val=1.0, clamp=True):
    level = level / _LEVEL_DENOM
    level = min_val + (max_val - min_val) * level
    if clamp:
        level = max(min_val, min(max_val, level))
    return (level,)


# timm builds these two with functools.partial; plain functions say the same.
def _desaturate_level_to_arg(level, hparams):
    return _minmax_level_to_arg(level, hparams, min_val=0.5, max_val=1.0)


def _gaussian_blur_level_to_arg(level, hparams):
    return _minmax_level_to_arg(level, hparams, min_val=0.1, max_val=2.0)


def _shear_level_to_arg(level, _hparams, negate):
    # range [-0.3, 0.3]
    level = (level / _LEVEL_DENOM) * 0.3
    level = _randomly_negate(level, negate)
    return (level,)


def _translate_abs_level_to_arg(level, hparams, negate):
    translate_const = hparams["translate_const"]
    level = (level / _LEVEL_DENOM) * float(translate_const)
    level = _randomly_negate(level, negate)
    return (level,)


def _translate_rel_level_to_arg(level, hparams, negate):
    # default range [-0.45, 0.45]
    translate_pct = hparams.get("translate_pct", 0.45)
    level = (level / _LEVEL_DENOM) * translate_pct
    level = _randomly_negate(level, negate)
    return (level,)


def _posterize_level_to_arg(level, _hparams):
    # As per Tensorflow TPU EfficientNet impl: range [0, 4], 'keep 0 up to 4 MSB of original
    # image'; intensity/severity of augmentation decreases with level
    return (int((level / _LEVEL_DENOM) * 4),)


def _posterize_increasing_level_to_arg(level, hparams):
    # As per Tensorflow models research and UDA impl: range [4, 0], 'keep 4 down to 0 MSB of
    # original image'; intensity/severity of augmentation increases with level
    return (4 - _posterize_level_to_arg(level, hparams)[0],)


def _posterize_original_level_to_arg(level, _hparams):
    # As per original AutoAugment paper description: range [4, 8], 'keep 4 up to 8 MSB of
    # image'; intensity/severity of augmentation decreases with level
    return (int((level / _LEVEL_DENOM) * 4) + 4,)


def _solarize_level_to_arg(level, _hparams):
    # range [0, 256]; intensity/severity of augmentation decreases with level
    return (min(256, int((level / _LEVEL_DENOM) * 256)),)


def _solarize_increasing_level_to_arg(level, _hparams):
    # range [0, 256]; intensity/severity of augmentation increases with level
    return (256 - _solarize_level_to_arg(level, _hparams)[0],)


def _solarize_add_level_to_arg(level, _hparams):
    # range [0, 110]
    return (min(128, int((level / _LEVEL_DENOM) * 110)),)


LEVEL_TO_ARG = {
    "AutoContrast": None,
    "Equalize": None,
    "Invert": None,
    "Rotate": _rotate_level_to_arg,
    # several variations of the posterize level scaling exist in TF/Google repos and papers
    "Posterize": _posterize_level_to_arg,
    "PosterizeIncreasing": _posterize_increasing_level_to_arg,
    "PosterizeOriginal": _posterize_original_level_to_arg,
    "Solarize": _solarize_level_to_arg,
    "SolarizeIncreasing": _solarize_increasing_level_to_arg,
    "SolarizeAdd": _solarize_add_level_to_arg,
    "Color": _enhance_level_to_arg,
    "ColorIncreasing": _enhance_increasing_level_to_arg,
    "Contrast": _enhance_level_to_arg,
    "ContrastIncreasing": _enhance_increasing_level_to_arg,
    "Brightness": _enhance_level_to_arg,
    "BrightnessIncreasing": _enhance_increasing_level_to_arg,
    "Sharpness": _enhance_level_to_arg,
    "SharpnessIncreasing": _enhance_increasing_level_to_arg,
    "ShearX": _shear_level_to_arg,
    "ShearY": _shear_level_to_arg,
    "TranslateX": _translate_abs_level_to_arg,
    "TranslateY": _translate_abs_level_to_arg,
    "TranslateXRel": _translate_rel_level_to_arg,
    "TranslateYRel": _translate_rel_level_to_arg,
    "Desaturate": _desaturate_level_to_arg,
    "GaussianBlur": _gaussian_blur_level_to_arg,
    "GaussianBlurRand": _minmax_level_to_arg,
}

NAME_TO_OP = {
    "AutoContrast": auto_contrast,
    "Equalize": equalize,
    "Invert": invert,
    "Rotate": rotate,
    "Posterize": posterize,
    "PosterizeIncreasing": posterize,
    "PosterizeOriginal": posterize,
    "Solarize": solarize,
    "SolarizeIncreasing": solarize,
    "SolarizeAdd": solarize_add,
    "Color": color,
    "ColorIncreasing": color,
    "Contrast": contrast,
    "ContrastIncreasing": contrast,
    "Brightness": brightness,
    "BrightnessIncreasing": brightness,
    "Sharpness": sharpness,
    "SharpnessIncreasing": sharpness,
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateX": translate_x_abs,
    "TranslateY": translate_y_abs,
    "TranslateXRel": translate_x_rel,
    "TranslateYRel": translate_y_rel,
    "Desaturate": desaturate,
    "GaussianBlur": gaussian_blur,
    "GaussianBlurRand": gaussian_blur_rand,
}

# Where timm draws, in the order it draws for one op after its probability and magnitude:
# the ops whose level function draws a sign (their level functions take `negate`) ...
SIGNED = frozenset({
    "Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "TranslateXRel", "TranslateYRel",
    "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
})
# ... then the affine ones, which draw their filter when given two (timm's _check_args_tf) ...
GEOMETRIC = frozenset({
    "Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "TranslateXRel", "TranslateYRel",
})
# ... and GaussianBlurRand, which draws its blur radius: uniform(0.1, 2.0 * factor).
BLUR_RADIUS_MIN, BLUR_RADIUS_MAX = 0.1, 2.0
