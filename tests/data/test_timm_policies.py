"""timm's RandAugment ported (resnet_flax/data/policies): every op bit-equal to timm's own,
the level functions' arguments equal, config strings read as timm reads them, and whole
policies equal to timm's when timm draws from the same generator.

timm is loaded from its auto_augment.py alone: ``import timm`` imports torchvision, whose
compiled ops do not load with the CPU torch here.
"""

import ast
import importlib.metadata
import importlib.util
import pathlib
import pickle
import types

import numpy as np
import pytest
from PIL import Image, ImageOps

from resnet_flax.data.policies import timm_ops
from resnet_flax.data.policies.timm_policies import (
    IMAGENET_MEAN,
    TimmRandAugment,
    parse_rand_config,
    rand_augment,
)

TIMM_VERSION = "1.0.31"
FILL = (124, 116, 104)  # create_transform's img_mean for the ImageNet mean
HPARAMS = dict(translate_const=int(32 * 0.45), img_mean=FILL)
RESAMPLES = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)
RSB = ("rand-m7-mstd0.5-inc1", "rand-m6-mstd0.5-inc1")
CONFIGS = RSB + (
    "rand-m9-mstd0.5-inc1", "rand-m9-n3-mstd1-mmax10-p0.5", "rand", "rand-m9-mstd0.5",
    "rand-mstd1-tweights", "rand-m10-n4-t3aw", "rand-m5-t3a-inc1", "rand-m9-mstd101",
    "rand-m12-mmax15-mstd0.5-p1.0", "rand-mmax0-m12-n1", "rand-inc0-n0",
    # timm's repeats: the last m, n, p or inc wins, the first mstd, mmax or t
    "rand-m9-m5-mstd1-mstd2-mmax12-mmax15-n1-n3-t3a-tweights-p0.2-p0.9",
)


@pytest.fixture(scope="module")
def timm_aa():
    spec = importlib.util.find_spec("timm")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("timm is not installed")
    if importlib.metadata.version("timm") != TIMM_VERSION:
        pytest.skip(f"the port is of timm {TIMM_VERSION}, not {importlib.metadata.version('timm')}")
    path = pathlib.Path(spec.submodule_search_locations[0]) / "data" / "auto_augment.py"
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= {"PIL", "numpy", "math", "random", "re", "functools", "typing"}, imported
    module_spec = importlib.util.spec_from_file_location("timm_auto_augment", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    # timm as it runs with Pillow < 13, whose posterize masks every bit away below 1 bit
    # where Pillow 13 raises: the port's choice (timm_ops.posterize).
    module.ImageOps = types.SimpleNamespace(
        **{name: getattr(ImageOps, name) for name in ("autocontrast", "equalize", "invert",
                                                      "solarize")},
        posterize=lambda image, bits: (ImageOps.posterize(image, bits) if bits >= 1
                                       else pillow12_posterize(image, bits)))
    return module


def pillow12_posterize(image, bits):
    """``ImageOps.posterize`` before Pillow 13: no check of ``bits``."""
    mask = ~(2 ** (8 - bits) - 1)
    return image.point([i & mask for i in range(256)] * len(image.getbands()))


def images(modes=("RGB",)):
    rng = np.random.default_rng(0)
    for mode in modes:
        for h, w in ((33, 29), (32, 32)):
            shape = (h, w, 3) if mode == "RGB" else (h, w)
            yield Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def same(a, b):
    return a.mode == b.mode and a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


class FixedDraws:
    """Stands in for timm's ``random``: the sign draw returns ``u``; counts the draws."""

    def __init__(self, u):
        self.u, self.calls = u, []

    def random(self):
        self.calls.append("random")
        return self.u

    def choice(self, seq):
        self.calls.append("choice")
        return seq[0]

    def uniform(self, a, b):
        self.calls.append("uniform")
        return b


LEVELS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0.37, 4.5, 9.99, 12, 15)


def test_level_functions_give_timms_arguments(timm_aa, monkeypatch):
    assert list(timm_ops.LEVEL_TO_ARG) == list(timm_aa.LEVEL_TO_ARG)
    signed = set()
    for name, fn in timm_ops.LEVEL_TO_ARG.items():
        if fn is None:
            assert timm_aa.LEVEL_TO_ARG[name] is None
            continue
        for negate in (False, True):
            draws = FixedDraws(0.75 if negate else 0.25)  # timm negates when random() > 0.5
            monkeypatch.setattr(timm_aa, "random", draws)
            for level in LEVELS:
                theirs = timm_aa.LEVEL_TO_ARG[name](level, HPARAMS)
                ours = fn(level, HPARAMS, negate) if name in timm_ops.SIGNED else fn(
                    level, HPARAMS)
                assert ours == theirs and type(ours[0]) is type(theirs[0]), (name, level, negate)
            if draws.calls:
                assert draws.calls == ["random"] * len(LEVELS), name
                signed.add(name)
    assert signed == timm_ops.SIGNED


def op_arguments(name):
    """Each level's extremes and middle, both signs (the level functions are timm's, above)."""
    fn = timm_ops.LEVEL_TO_ARG[name]
    if fn is None:
        return [()]
    signs = (False, True) if name in timm_ops.SIGNED else (None,)
    return sorted({fn(level, HPARAMS) if negate is None else fn(level, HPARAMS, negate)
                   for level in (0, 0.37, 5, 10, 13) for negate in signs})


def test_every_op_is_timms_bit_for_bit(timm_aa):
    assert list(timm_ops.NAME_TO_OP) == list(timm_aa.NAME_TO_OP)
    for name, ours in timm_ops.NAME_TO_OP.items():
        if name == "GaussianBlurRand":
            continue  # it draws: below
        theirs = timm_aa.NAME_TO_OP[name]
        geometric = name in timm_ops.GEOMETRIC
        modes = ("RGB",) if geometric else ("RGB", "L")
        resamples = [{}] + [{"resample": r} for r in RESAMPLES] if geometric else [{}]
        for args in op_arguments(name):
            for image in images(modes):
                for resample in resamples:
                    kwargs = dict(fillcolor=FILL, **resample)
                    want = theirs(image, *args, **kwargs)
                    got = ours(image, *args, **kwargs)
                    assert same(got, want), (name, args, image.size, image.mode, resample)


def test_posterize_below_one_bit_is_black_as_before_pillow_13():
    for image in images(("RGB", "L")):
        for bits in range(1, 9):
            assert same(pillow12_posterize(image, bits), ImageOps.posterize(image, bits))
        for bits in (0, -1, -2):
            black = timm_ops.posterize(image, bits)
            assert same(black, pillow12_posterize(image, bits))
            assert not np.asarray(black).any()
    if tuple(int(x) for x in Image.__version__.split(".")[:2]) >= (13, 0):
        with pytest.raises(ValueError, match="bits"):
            ImageOps.posterize(next(images()), 0)  # why the port does not call it


def test_gaussian_blur_rand_takes_the_radius_timm_draws(timm_aa):
    import random

    for factor in (0.1, 0.5, 1.0):
        for image in images():
            random.seed(7)
            want = timm_aa.gaussian_blur_rand(image, factor)
            random.seed(7)
            radius = random.uniform(timm_ops.BLUR_RADIUS_MIN, timm_ops.BLUR_RADIUS_MAX * factor)
            assert same(timm_ops.gaussian_blur_rand(image, factor, radius), want)


def test_geometric_ops_draw_their_filter_where_timm_does(timm_aa, monkeypatch):
    image = next(images())
    for name in timm_ops.NAME_TO_OP:
        draws = FixedDraws(0.25)
        monkeypatch.setattr(timm_aa, "random", draws)
        args = op_arguments(name)[-1]
        timm_aa.NAME_TO_OP[name](image, *args, fillcolor=FILL,
                                 resample=timm_aa._RANDOM_INTERPOLATION)
        expected = ["choice"] if name in timm_ops.GEOMETRIC else []
        assert draws.calls == (["uniform"] if name == "GaussianBlurRand" else expected), name
    with pytest.raises(TypeError, match="drawn beforehand"):
        timm_ops.rotate(image, 10, resample=timm_aa._RANDOM_INTERPOLATION)


def timm_hparams(image_size=224, mean=IMAGENET_MEAN, interpolation="random"):
    """What timm's create_transform passes to rand_augment_transform (transforms_factory.py)."""
    hparams = dict(translate_const=int(image_size * 0.45),
                   img_mean=tuple([min(255, round(255 * x)) for x in mean]))
    if interpolation and interpolation != "random":
        hparams["interpolation"] = Image.Resampling[interpolation.upper()]  # str_to_pil_interp
    return hparams


def test_the_hparams_are_create_transforms(timm_aa):
    source = (pathlib.Path(timm_aa.__file__).parents[1] / "data" / "transforms_factory.py")
    text = source.read_text()
    for line in ("translate_const=int(img_size_min * 0.45),",
                 "img_mean=tuple([min(255, round(255 * x)) for x in mean]),",
                 "if interpolation and interpolation != 'random':",
                 "secondary_tfl += [rand_augment_transform(auto_augment, aa_params)]"):
        assert line in text, line
    policy = rand_augment("rand-m9-mstd0.5-inc1", 224)
    assert policy.fill == FILL and policy.translate_const == 100
    assert policy.translate_pct == 0.45 and policy.interpolation == "random"


@pytest.mark.parametrize("interpolation", ["random", "bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("config", CONFIGS)
def test_configs_read_as_timm_reads_them(timm_aa, config, interpolation):
    hparams = timm_hparams(224, IMAGENET_MEAN, interpolation)
    theirs = timm_aa.rand_augment_transform(config, hparams)
    ours = rand_augment(config, 224, IMAGENET_MEAN, interpolation)
    assert ours.num_layers == theirs.num_layers
    if theirs.choice_weights is None:
        assert ours.choice_weights is None
    else:
        assert ours.choice_weights == tuple(theirs.choice_weights)
    assert ours.ops == tuple(op.name for op in theirs.ops)
    ours_hparams = ours.hparams()
    for op in theirs.ops:
        assert (op.prob, op.magnitude) == (ours.prob, ours.magnitude)
        assert (op.magnitude_std, op.magnitude_max) == (ours.magnitude_std, ours.magnitude_max)
        assert op.kwargs["fillcolor"] == ours.fill
        assert op.kwargs["resample"] == ours_hparams.get("interpolation",
                                                         timm_ops._RANDOM_INTERPOLATION)
        assert op.hparams["translate_const"] == ours.translate_const
        assert op.hparams.get("translate_pct", 0.45) == ours.translate_pct


BAD = {  # config: (its bad part, what timm does with it)
    "augmix-m9": ("augmix", "AssertionError"),
    "rand-m9-x3": ("x3", "AssertionError"),
    "rand-w0": ("w0", "AssertionError: the 'w' key was removed"),
    "rand-m9.5": ("m9.5", "ValueError from int()"),
    "rand-mmax1.5": ("mmax1.5", "ValueError from int()"),
    "rand-p0.5.1": ("p0.5.1", "ValueError from float()"),
    "rand-tfoo": ("tfoo", "ignored: the default ops"),
    "rand-mstdinf": ("mstdinf", "ignored: no digit"),
    "rand--m9": ("", "ignored"),
    "rand-m9-": ("", "ignored"),
}


@pytest.mark.parametrize("config", BAD)
def test_bad_configs_say_what_is_wrong_on_one_line(config):
    part, _timm = BAD[config]
    with pytest.raises(ValueError) as raised:
        parse_rand_config(config)
    message = str(raised.value)
    assert "\n" not in message and repr(part) in message and "valid" in message, message


def test_bad_settings_are_refused_when_the_policy_is_made():
    with pytest.raises(ValueError, match="lanczos"):
        rand_augment("rand-m9", 224, interpolation="lanczos")  # PIL's affine ops refuse it
    with pytest.raises(ValueError, match="without replacement"):
        rand_augment("rand-n16-tweights", 224)  # 15 weighted ops
    with pytest.raises(ValueError, match="Cutout"):
        TimmRandAugment(ops=("Rotate", "Cutout"))


class GeneratorDraws:
    """timm's ``random`` and ``np.random.choice``, drawing from a Generator as the port does."""

    def __init__(self, rng):
        self.rng = rng
        self.np = types.SimpleNamespace(random=types.SimpleNamespace(choice=self.choose))

    def choose(self, ops, size, replace, p):
        return [ops[i] for i in self.rng.choice(len(ops), size, replace=replace, p=p)]

    def random(self):
        return self.rng.random()

    def uniform(self, a, b):
        return self.rng.uniform(a, b)

    def gauss(self, mu, sigma):
        return self.rng.normal(mu, sigma)

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]


def assert_policies_equal(timm_aa, monkeypatch, ours, theirs, seeds):
    both = list(images())  # odd and even sizes
    for seed in range(seeds):
        image = both[seed % 2]
        draws = GeneratorDraws(np.random.default_rng(seed))
        monkeypatch.setattr(timm_aa, "random", draws)
        monkeypatch.setattr(timm_aa, "np", draws.np)
        want = theirs(image)
        rng = np.random.default_rng(seed)
        assert same(ours(image, rng), want), seed
        assert rng.random() == draws.rng.random(), seed  # as many draws


@pytest.mark.parametrize("interpolation", ["random", "bilinear"])
@pytest.mark.parametrize("config", CONFIGS)
def test_policies_are_timms_given_the_same_draws(timm_aa, monkeypatch, config, interpolation):
    theirs = timm_aa.rand_augment_transform(config, timm_hparams(32, IMAGENET_MEAN,
                                                                 interpolation))
    ours = rand_augment(config, 32, IMAGENET_MEAN, interpolation)
    assert_policies_equal(timm_aa, monkeypatch, ours, theirs, 24)


def test_every_op_in_a_policy_is_timms_given_the_same_draws(timm_aa, monkeypatch):
    """The ops no config string reaches too (TranslateX, PosterizeOriginal, GaussianBlurRand)."""
    names = list(timm_ops.NAME_TO_OP)
    hparams = dict(timm_hparams(32), magnitude_std=2.0, magnitude_max=12)
    ops = timm_aa.rand_augment_ops(magnitude=8, prob=0.9, hparams=hparams, transforms=names)
    theirs = timm_aa.RandAugment(ops, num_layers=4)
    ours = TimmRandAugment(ops=tuple(names), num_layers=4, prob=0.9, magnitude=8,
                           magnitude_std=2.0, magnitude_max=12, fill=FILL,
                           translate_const=int(32 * 0.45))
    assert_policies_equal(timm_aa, monkeypatch, ours, theirs, 120)


def test_a_policy_is_a_function_of_its_rng_and_pickles():
    policy = rand_augment("rand-m7-mstd0.5-inc1", 32)
    image = next(images())
    outputs = [np.asarray(policy(image, np.random.default_rng(seed))) for seed in range(8)]
    again = pickle.loads(pickle.dumps(policy))
    assert again == policy
    for seed, output in enumerate(outputs):
        assert np.array_equal(np.asarray(policy(image, np.random.default_rng(seed))), output)
        assert np.array_equal(np.asarray(again(image, np.random.default_rng(seed))), output)
    assert len({output.tobytes() for output in outputs}) > 4


@pytest.mark.parametrize("config", ["rand-m7-mstd0.5-inc1", "rand-m9-n3-mstd1-mmax10-p0.5",
                                    "rand-m12-mmax15-mstd101-p0.8", "rand-m9-n4-tweights"])
def test_draws_cover_the_ops_at_their_probability_within_the_bound(config):
    policy = rand_augment(config, 224)
    rng = np.random.default_rng(0)
    calls = 3000
    drawn = [policy.draw(rng) for _ in range(calls)]
    ops = [op for ops in drawn for op in ops]
    assert {op.name for op in ops} == set(policy.ops)
    applied = len(ops) / (calls * policy.num_layers)
    assert abs(applied - policy.prob) < 0.03, applied
    magnitudes = np.array([op.magnitude for op in ops])
    bound = policy.magnitude_max or 10
    assert magnitudes.min() >= 0 and magnitudes.max() <= bound
    if policy.magnitude_std == float("inf"):  # uniform in [0, m]
        assert abs(magnitudes.mean() - policy.magnitude / 2) < 0.3
    if policy.choice_weights is not None:  # without replacement
        assert all(len({op.name for op in ops}) == len(ops) for ops in drawn)
        counts = np.array([sum(op.name == name for op in ops) for name in policy.ops])
        assert counts.argmax() == int(np.argmax(policy.choice_weights))  # Rotate, weight 3
