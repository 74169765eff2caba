"""The torchvision policies' port against torchvision itself: each op pixel for pixel, the
magnitude tables value for value, whole policies given the same draws, and the draws."""

import dataclasses
import importlib.util
import pathlib
import pickle
import sys
import types

import numpy as np
import pytest
from PIL import Image

from resnet_flax.data.policies import torchvision_policies as tvp

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness")
OPS += ("Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
SIGNED_OPS = tvp.GEOMETRIC_OPS + ("Brightness", "Color", "Contrast", "Sharpness")
SIZES = ((33, 29), (40, 64))  # (height, width): odd and even.


def _torchvision_transforms():
    """torchvision's autoaugment and functional modules, without torchvision/__init__.py where
    that fails (its compiled ops need not match this torch; the PIL paths use none)."""
    pytest.importorskip("torch")
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        pytest.skip("torchvision is not installed")
    try:
        import torchvision  # noqa: F401
    except Exception:
        package = types.ModuleType("torchvision")
        package.__path__ = [str(pathlib.Path(spec.origin).parent)]
        sys.modules.setdefault("torchvision", package)
    from torchvision.transforms import autoaugment
    from torchvision.transforms import functional as F

    return autoaugment, F


@pytest.fixture(scope="module")
def tv():
    return _torchvision_transforms()


@pytest.fixture(scope="module")
def fused_linspace():
    """Whether this torch computes linspace with fused multiply-adds, as the port does: its
    AVX2/AVX512 kernels do; its scalar one rounds twice, one float32 ulp off at some bins."""
    import torch

    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def _image(mode: str, height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def _magnitudes(op_name: str) -> list[float]:
    """Bin edges, a middle bin and 0 of both policies' tables, with both signs where signed."""
    chosen = {0.0}
    for space in (tvp.trivial_augment_wide_space(31), tvp.rand_augment_space(31, SIZES[0])):
        magnitudes, signed = space.get(op_name, (tvp.NO_MAGNITUDE, False))  # Invert: neither.
        for magnitude in magnitudes[:2] + magnitudes[-2:] + magnitudes[15:16]:
            chosen |= {magnitude, -magnitude} if signed else {magnitude}
    if op_name == "Posterize":
        chosen = {8.0, 7.0, 4.0, 2.0, 1.0}
    if op_name == "Solarize":
        chosen |= {127.5, 128.0, 8.5}
    return sorted(chosen)


@pytest.mark.parametrize("op_name", OPS + ("Invert",))
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_each_op_matches_torchvision_pixel_for_pixel(tv, op_name, mode):
    autoaugment, F = tv
    fills = [None, 128, 77.9] + ([(10, 200, 30)] if mode == "RGB" else [(201,)])
    interpolations = ("nearest", "bilinear")
    if op_name not in tvp.GEOMETRIC_OPS:  # Neither takes the interpolation or fill.
        fills, interpolations = [None], ("nearest",)
    for height, width in SIZES:
        image = _image(mode, height, width)
        for magnitude in _magnitudes(op_name):
            for interpolation in interpolations:
                mode_enum = F.InterpolationMode(interpolation)
                for fill in fills:
                    ours = tvp.apply_op(image, op_name, magnitude, interpolation, fill)
                    theirs = autoaugment._apply_op(
                        image, op_name, magnitude, interpolation=mode_enum, fill=fill
                    )
                    where = (op_name, mode, height, width, magnitude, interpolation, fill)
                    assert ours.mode == theirs.mode, where
                    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs), str(where))


def _as_lists(space) -> dict:
    return {name: (tuple(m.tolist()) if m.ndim else m.item(), s) for name, (m, s) in space.items()}


@pytest.mark.parametrize("num_bins", [31, 2, 10, 101])
@pytest.mark.parametrize("image_size", [(33, 29), (224, 160)])
def test_magnitude_tables_match_torchvision(tv, fused_linspace, num_bins, image_size):
    autoaugment, _ = tv
    theirs = {
        "TrivialAugmentWide": _as_lists(
            autoaugment.TrivialAugmentWide()._augmentation_space(num_bins)
        ),
        "RandAugment": _as_lists(
            autoaugment.RandAugment()._augmentation_space(num_bins, image_size)
        ),
    }
    ours = {
        "TrivialAugmentWide": tvp.trivial_augment_wide_space(num_bins),
        "RandAugment": tvp.rand_augment_space(num_bins, image_size),
    }
    for policy in ours:
        assert list(ours[policy]) == list(theirs[policy]), policy  # Same ops, same order.
        for op_name, (magnitudes, signed) in ours[policy].items():
            their_magnitudes, their_signed = theirs[policy][op_name]
            assert signed == their_signed, (policy, op_name)
            if not magnitudes:  # A 0-d tensor in torchvision: the op takes 0.0.
                assert their_magnitudes == 0.0, (policy, op_name)
                continue
            assert all(isinstance(m, float) for m in magnitudes)
            if fused_linspace:
                assert magnitudes == their_magnitudes, (policy, op_name)
            else:
                np.testing.assert_allclose(magnitudes, their_magnitudes, rtol=2**-23, atol=0)


def _policies():
    return [
        tvp.TrivialAugmentWide(),
        tvp.TrivialAugmentWide(num_magnitude_bins=10, interpolation="bilinear", fill=(5, 90, 250)),
        tvp.RandAugment(),
        tvp.RandAugment(num_ops=3, magnitude=27, interpolation="bilinear", fill=128),
        tvp.RandAugment(num_ops=1, magnitude=0, num_magnitude_bins=5),
    ]


def _torchvision_policy(autoaugment, F, policy):
    kwargs = dataclasses.asdict(policy)
    kwargs["interpolation"] = F.InterpolationMode(kwargs["interpolation"])
    return getattr(autoaugment, type(policy).__name__)(**kwargs)


@pytest.mark.parametrize("policy", _policies(), ids=repr)
def test_policy_matches_torchvision_given_the_same_draws(tv, fused_linspace, monkeypatch, policy):
    """torchvision's forward, its torch.randint fed from a numpy rng, gives our output for the
    same rng seed: the same draws in the same order, the same ops."""
    import torch

    if not fused_linspace:
        pytest.skip("this torch's tables differ from the port's in the last bit")
    autoaugment, F = tv
    theirs = _torchvision_policy(autoaugment, F, policy)
    for seed in range(60):
        grey = seed % 3 == 0 and not isinstance(policy.fill, tuple)  # A 3-value fill needs RGB.
        image = _image("L" if grey else "RGB", 33 + seed % 2, 29 + seed % 4, seed)
        feed = np.random.default_rng(seed)

        def randint(high, size, dtype=None, feed=feed):
            return torch.tensor([int(feed.integers(high))], dtype=dtype or torch.long)

        monkeypatch.setattr(torch, "randint", randint)
        their_output = theirs(image)
        monkeypatch.undo()
        ours = policy(image, np.random.default_rng(seed))
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(their_output), str(seed))


@pytest.mark.parametrize("policy", _policies(), ids=repr)
def test_draws_cover_every_op_from_the_tables_bins(policy):
    image_size = SIZES[0]
    if isinstance(policy, tvp.RandAugment):
        space = tvp.rand_augment_space(policy.num_magnitude_bins, image_size)
        num_ops = policy.num_ops
    else:
        space = tvp.trivial_augment_wide_space(policy.num_magnitude_bins)
        num_ops = 1
    seen_ops, seen_signs, nonzero_signed = set(), set(), False
    for seed in range(400):
        ops = policy.draw(np.random.default_rng(seed), image_size)
        assert len(ops) == num_ops
        for op_name, magnitude in ops:
            magnitudes, signed = space[op_name]
            assert signed == (op_name in SIGNED_OPS)
            allowed = magnitudes or (0.0,)
            if isinstance(policy, tvp.RandAugment) and magnitudes:
                allowed = (magnitudes[policy.magnitude],)
            in_table = abs(magnitude) in allowed if signed else magnitude in allowed
            assert in_table, (op_name, magnitude)
            seen_ops.add(op_name)
            if signed and magnitude != 0.0:
                nonzero_signed = True
                seen_signs.add(np.sign(magnitude))
            if not signed:
                assert np.copysign(1.0, magnitude) == 1.0, (op_name, magnitude)
    assert seen_ops == set(OPS)
    if nonzero_signed:
        assert seen_signs == {-1.0, 1.0}


@pytest.mark.parametrize("policy", _policies(), ids=repr)
def test_same_seed_same_image_and_policies_pickle(policy):
    image = _image("RGB", 33, 29)
    first, second = (np.asarray(policy(image, np.random.default_rng(7))) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    assert first.shape == (33, 29, 3)
    assert pickle.loads(pickle.dumps(policy)) == policy


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="interpolation"):
        tvp.TrivialAugmentWide(interpolation="bicubic")
    with pytest.raises(ValueError, match="num_magnitude_bins"):
        tvp.TrivialAugmentWide(num_magnitude_bins=1)
    with pytest.raises(ValueError, match="magnitude"):
        tvp.RandAugment(magnitude=31)
    with pytest.raises(ValueError, match="not recognized"):
        tvp.apply_op(_image("L", 8, 8), "Blur", 1.0)
