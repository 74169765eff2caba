"""The model zoo: every registered name builds with its reference parameter count and
runs a forward and a train step (itself, or its lighter twin when only its sizes
differ). The ablation switches are in test_switches.py."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from resnet_flax import models
from resnet_flax.models.parts import part_class, part_settings

# Parameters at the natural class count. ImageNet: torchvision (resnet200, resnet50d,
# se_resnet50: timm); CIFAR resnets with option A (He et al. 2015: 0.27M .. 19.4M);
# preact 164/1001 (He et al. 2016: 1.7M, 10.2M); WRN (Zagoruyko & Komodakis: 28-10
# 36.5M, 40-4 8.9M, 16-8 11.0M, 16-4 2.7M); ResNeXt-29 (Xie et al.: 34.4M, 68.1M).
PARAM_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnet200": 64_673_832,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnet50d": 25_576_264,
    "se_resnet50": 28_088_024,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    "preact_resnet18": 11_172_170,
    "preact_resnet164": 1_703_258,
    "preact_resnet1001": 10_327_706,
    "wrn_16_4": 2_748_890,
    "wrn_16_8": 10_961_370,
    "wrn_28_10": 36_479_194,
    "wrn_40_4": 8_949_210,
    "resnext29_8x64d": 34_426_698,
    "resnext29_16x64d": 68_155_210,
    "cifar_resnet4": 676_682,
    "fashion_mnist_resnet": 696_042,
    "keras_resnet34": 21_289_802,
}
# A deeper or wider copy of a lighter model: the same module with the same options,
# only its sizes differ. Its forward and train step run the twin's code (a stage is a
# loop over one block class), so they are run on the twin; its own exact shapes are
# traced by test_param_count. Running them op by op took ~460 s of the suite's 2,430
# (summed over its workers; ResNet-1202 alone 67 s).
SIZE_FIELDS = {"stage_sizes", "stage_widths", "groups", "base_width"}
DEEP_TWINS = {
    **dict.fromkeys(("resnet101", "resnet152", "resnet200", "wide_resnet50_2",
                     "wide_resnet101_2"), "resnet50"),
    **dict.fromkeys(("resnext101_32x8d", "resnext101_64x4d"), "resnext50_32x4d"),
    "resnext29_16x64d": "resnext29_8x64d",
    **dict.fromkeys(("resnet110", "resnet1202"), "resnet56"),
    "preact_resnet1001": "preact_resnet164",
    **dict.fromkeys(("wrn_16_8", "wrn_28_10", "wrn_40_4"), "wrn_16_4"),
}
# Their compiled (shallow) steps take ~6-11 s in a 2-worker run on 2 cores.
HEAVY = {"resnext50_32x4d", "se_resnet50", "preact_resnet164", "resnext29_8x64d",
         "keras_resnet34",  # resnet34's graph; only Keras' initializer and BN settings differ
         "resnet50", "resnet50d", "preact_resnet18"}
SLOW_TO_TRACE = {"resnet1202", "preact_resnet1001"}
# Bottleneck nets whose whole forward pass, identity-shortcut blocks included, test_torch_weights
# matches against torchvision's or timm's: their train step runs each stage's first block.
TORCH_MATCHED = {"resnet50", "resnet50d", "se_resnet50", "resnext50_32x4d"}


def _mark(names, slow):
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in names]


def shapes(model, input_shape):
    return jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, *input_shape)), train=False))


def count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def flat_names(tree) -> list[str]:
    return ["/".join(k) for k in traverse_util.flatten_dict(dict(tree))]


def small_input(name, batch=2, side=32):
    h, w, c = models.spec(name).input_shape
    side = min(h, side)
    return jax.random.normal(jax.random.key(1), (batch, side, side, c))


def shallow(model, blocks: int = 2):
    """``model`` with at most ``blocks`` blocks per stage: each stage's first block (its
    stride and projection) and one after it (identity shortcut) still run, and every
    block of a stage is the same class with the same options as those two (``blocks=1``:
    the first only, where another test checks the identity blocks). The later blocks
    repeat that code and only cost compile time (preact_resnet164's 18 blocks a stage made
    it the zoo's slowest step: 26 s of ~390). Its full shapes are traced by
    test_param_count."""
    return model.clone(stage_sizes=tuple(min(n, blocks) for n in model.stage_sizes))


def train_step(model, x, labels, variables, lr=0.1):
    """One SGD step in train mode: (loss, new params, new batch_stats)."""
    tx = optax.sgd(lr)

    def loss_fn(params):
        logits, updates = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]}, x, train=True,
            mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, updates["batch_stats"]

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
    updates, _ = tx.update(grads, tx.init(variables["params"]), variables["params"])
    return loss, optax.apply_updates(variables["params"], updates), stats


def test_every_name_has_a_reference_count():
    assert sorted(PARAM_COUNTS) == models.names()


@pytest.mark.parametrize("name", _mark(sorted(PARAM_COUNTS), SLOW_TO_TRACE))
def test_param_count(name):
    model = models.create(name)
    assert count(shapes(model, models.spec(name).input_shape)["params"]) == PARAM_COUNTS[name]


def _options(name) -> dict:
    """The module's class and every option it was built with, its parts' own included."""
    model = models.create(name)
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
              if f.name not in ("parent", "name")}
    for part in ("block", "conv", "norm"):
        fields.update(part_settings(fields[part]), **{part: part_class(fields[part])})
    return {"class": type(model), **fields}


@pytest.mark.parametrize("deep, twin", sorted(DEEP_TWINS.items()))
def test_a_deep_twin_differs_from_its_run_twin_only_in_its_sizes(deep, twin):
    assert twin not in DEEP_TWINS
    a, b = _options(deep), _options(twin)
    assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} <= SIZE_FIELDS


@pytest.mark.parametrize("name", _mark([n for n in models.names() if n not in DEEP_TWINS],
                                       HEAVY))
def test_forward_and_train_step(name):
    # Momentum 0: the step leaves this batch's statistics, which the eval pass needs.
    model = shallow(models.create(name, bn_momentum=0.0), 1 if name in TORCH_MATCHED else 2)
    x = small_input(name, side=16)  # Every stage still runs (at 1x1 last, on ImageNet nets).
    labels = jnp.array([0, 1])
    # Compiled, not op by op: on a shallow net one program per step compiles faster
    # than its ops one by one (zoo: 303 s summed against 352 s eager).
    run = jax.jit
    variables = run(lambda x: model.init(jax.random.key(0), x, train=False))(x)
    loss, params, stats = run(lambda v: train_step(model, x, labels, v))(variables)
    # Compared in NumPy: a jnp op on each of ~50 leaf shapes compiles ~50 programs.
    assert np.isfinite(float(loss))
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           variables["params"], params)
    assert any(jax.tree.leaves(changed))
    assert not all(jax.tree.leaves(jax.tree.map(
        lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), variables["batch_stats"],
        stats)))
    # Eval mode with the initial statistics (mean 0, var 1) does not normalize, and
    # 600 residual additions overflow float32 (resnet1202); so evaluate with the
    # batch's statistics. From the initial parameters: one lr-0.1 step on 2 examples
    # can push a 50-block net to overflow (seen once for resnet152 in CI), which says
    # nothing about the model.
    logits = run(lambda v: model.apply(v, x, train=False))(
        {"params": variables["params"], "batch_stats": stats})
    assert logits.shape == (2, models.spec(name).num_classes)
    assert logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("name", ["plain_resnet20", "plain_resnet18", "plain_wrn_16_4"])
def test_plain_twin_forward_and_train_step(name):
    model = models.create(name)
    assert model.shortcut is None
    assert not any("downsample" in n for n in flat_names(shapes(model, (32, 32, 3))["params"]))
    model, x = shallow(model), small_input(name, side=16)
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)
    loss, _, _ = jax.jit(lambda v: train_step(model, x, jnp.array([0, 1]), v))(variables)
    assert np.isfinite(float(loss))


@pytest.mark.parametrize("name", models.names())
def test_every_family_has_a_plain_twin(name):
    if name in SLOW_TO_TRACE:
        pytest.skip("same code path as the shallower twins; 5 s to trace")
    plain = shapes(models.create(f"plain_{name}"), models.spec(name).input_shape)
    assert not any("downsample" in n for n in flat_names(plain["params"]))
    residual = count(shapes(models.create(name), models.spec(name).input_shape)["params"])
    assert count(plain["params"]) <= residual


def test_create_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="unknown model 'resnet7'"):
        models.create("resnet7")
    with pytest.raises(ValueError, match="shortcutt"):
        models.create("resnet20", shortcutt="B")
    with pytest.raises(ValueError, match="6n"):
        models.create("wrn_27_2")


@pytest.mark.parametrize("name,near", [
    ("resnet_50", "; did you mean 'resnet50' or 'resnet50d'? "),
    ("plain_resnet_56", "; did you mean 'plain_resnet56' or 'plain_resnet50'? "),
    ("xyz", "; "),
])
def test_an_unknown_name_gets_the_closest_names_and_where_the_list_is(name, near):
    with pytest.raises(ValueError) as err:
        models.spec(name)
    message = str(err.value)
    assert message == (f"unknown model {name!r}{near}`python -m resnet_flax.summary --zoo` "
                       f"lists all {len(models.names())} (each also as plain_<name>; any "
                       "wrn_<6n+4>_<k>)")
    assert len(message) < 200 and "resnet152" not in message


def test_any_wrn_depth_and_width_resolves():
    model = models.create("wrn_22_2")
    assert tuple(model.stage_sizes) == (3, 3, 3) and tuple(model.stage_widths) == (32, 64, 128)
    assert model.pre_activation() and model.block.keywords["block_dropout"] == 0.3
    assert model.num_classes == 10


def test_num_classes_defaults_to_the_natural_one_and_can_be_overridden():
    assert models.create("resnet50").num_classes == 1000
    assert models.create("resnet20").num_classes == 10
    assert models.create("resnet20", num_classes=100).num_classes == 100


# --- shortcuts ---------------------------------------------------------------
