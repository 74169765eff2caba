"""The model zoo: every registered name builds with its reference parameter count and
runs a forward and a train step (itself, or its lighter twin when only its sizes
differ), and every ablation switch does what it says."""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from resnet_flax import models
from resnet_flax.models import layers
from resnet_flax.models.blocks import se_width

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
# Bottleneck nets whose whole forward pass, identity-shortcut blocks included, test_pretrained
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
    the first only, where another test checks the identity blocks). Op by op, a
    stage's later blocks repeat the same ops: preact_resnet164's 18 blocks a stage made
    it the zoo's slowest step (26 s of ~390). Its full shapes are traced by
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
    """The module's class and every option it was built with."""
    model = models.create(name)
    return {"class": type(model), **{f.name: getattr(model, f.name)
                                     for f in dataclasses.fields(model)
                                     if f.name not in ("parent", "name")}}


@pytest.mark.parametrize("deep, twin", sorted(DEEP_TWINS.items()))
def test_a_deep_twin_differs_from_its_run_twin_only_in_its_sizes(deep, twin):
    assert twin not in DEEP_TWINS
    a, b = _options(deep), _options(twin)
    assert {k for k in a if a[k] != b[k]} <= SIZE_FIELDS


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
    assert bool(jnp.isfinite(loss))
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["params"], params)
    assert any(jax.tree.leaves(changed))
    assert not all(jax.tree.leaves(jax.tree.map(jnp.array_equal, variables["batch_stats"],
                                                stats)))
    # Eval mode with the initial statistics (mean 0, var 1) does not normalize, and
    # 600 residual additions overflow float32 (resnet1202); so evaluate with the
    # batch's statistics. From the initial parameters: one lr-0.1 step on 2 examples
    # can push a 50-block net to overflow (seen once for resnet152 in CI), which says
    # nothing about the model.
    logits = run(lambda v: model.apply(v, x, train=False))(
        {"params": variables["params"], "batch_stats": stats})
    assert logits.shape == (2, models.spec(name).num_classes)
    assert logits.dtype == jnp.float32 and bool(jnp.isfinite(logits).all())


@pytest.mark.parametrize("name", ["plain_resnet20", "plain_resnet18", "plain_wrn_16_4"])
def test_plain_twin_forward_and_train_step(name):
    model = models.create(name)
    assert model.plain
    assert not any("downsample" in n for n in flat_names(shapes(model, (32, 32, 3))["params"]))
    model, x = shallow(model), small_input(name, side=16)
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)
    loss, _, _ = jax.jit(lambda v: train_step(model, x, jnp.array([0, 1]), v))(variables)
    assert bool(jnp.isfinite(loss))


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


def test_any_wrn_depth_and_width_resolves():
    model = models.create("wrn_22_2")
    assert tuple(model.stage_sizes) == (3, 3, 3) and tuple(model.stage_widths) == (32, 64, 128)
    assert model.preact and model.block_dropout == 0.3 and model.num_classes == 10


def test_num_classes_defaults_to_the_natural_one_and_can_be_overridden():
    assert models.create("resnet50").num_classes == 1000
    assert models.create("resnet20").num_classes == 10
    assert models.create("resnet20", num_classes=100).num_classes == 100


# --- shortcuts ---------------------------------------------------------------

def _downsample_blocks(name, **overrides):
    params = shapes(models.create(name, **overrides), (32, 32, 3))["params"]
    return sorted({n.split("/")[0] for n in flat_names(params) if "/downsample/" in n})


def test_option_a_is_parameter_free():
    assert _downsample_blocks("resnet20", shortcut="A") == []
    b = count(shapes(models.create("resnet20", shortcut="B"), (32, 32, 3))["params"])
    # B adds 1x1 conv + BN at the two stage transitions: 16->32 and 32->64.
    assert b - PARAM_COUNTS["resnet20"] == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_option_a_subsamples_and_zero_pads():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))
    sc = models.Shortcut(32, 2, "A", norm=None, conv_init=None)
    y = sc.apply({}, x)
    assert y.shape == (2, 4, 4, 32)
    np.testing.assert_array_equal(y[..., 8:24], x[:, ::2, ::2, :])
    assert not jnp.any(y[..., :8]) and not jnp.any(y[..., 24:])


def test_option_b_projects_only_where_the_shape_changes():
    assert _downsample_blocks("resnet18") == ["layer2_0", "layer3_0", "layer4_0"]
    assert _downsample_blocks("resnet50") == ["layer1_0", "layer2_0", "layer3_0", "layer4_0"]


def test_option_c_projects_everywhere():
    assert len(_downsample_blocks("resnet18", shortcut="C")) == 8


def test_option_d_average_pools_before_a_stride_1_projection():
    model = models.create("resnet50d")
    params = shapes(model, (64, 64, 3))["params"]
    assert params["layer2_0"]["downsample"]["conv"]["kernel"].shape == (1, 1, 256, 512)
    x = jax.random.normal(jax.random.key(0), (1, 7, 7, 4))
    sc = models.Shortcut(8, 2, "D", norm=layers.norm_factory(False, 0.9, 1e-5, jnp.float32),
                         conv_init=layers.TORCH_CONV_INIT)
    variables = sc.init(jax.random.key(0), x)
    assert sc.apply(variables, x).shape == (1, 4, 4, 8)
    # ceil_mode, count_include_pad=False: the last partial window averages 1 pixel.
    pooled = layers.avg_pool_2x2_ceil(x)
    np.testing.assert_allclose(pooled[0, 3, 3], x[0, 6, 6], rtol=1e-6)
    np.testing.assert_allclose(pooled[0, 0, 0], x[0, :2, :2].mean((0, 1)), rtol=1e-5)


def test_plain_flag_removes_every_shortcut():
    model = models.create("resnet20", plain=True, zero_init_residual=True)
    x = small_input("resnet20")
    variables = model.init(jax.random.key(0), x, train=False)
    # With zero-init and no shortcut every block outputs relu(0) = 0.
    assert not jnp.any(model.apply(variables, x, train=False, return_features=True)["stage1"])


# --- pre-activation --------------------------------------------------------------

def test_preact_moves_bn_relu_into_the_branch():
    post = shapes(models.create("resnet20", shortcut="B"), (32, 32, 3))["params"]
    pre = shapes(models.create("resnet20", shortcut="B", preact=True), (32, 32, 3))["params"]
    assert "bn1" in post and "bn1" not in pre and "bn_final" in pre
    assert "bn" in post["layer2_0"]["downsample"] and "bn" not in pre["layer2_0"]["downsample"]
    # Same BN count (stem BN -> final BN) minus the two projection BNs.
    assert count(post) - count(pre) == 2 * 32 + 2 * 64


def test_preact_block_adds_without_a_final_relu():
    x = small_input("resnet20")
    model = models.create("resnet20", preact=True)
    variables = model.init(jax.random.key(0), x, train=False)
    feats = model.apply(variables, x, train=False, return_features=True)
    assert jnp.any(feats["stage1"] < 0)  # post-activation outputs are all >= 0
    post = models.create("resnet20")
    feats = post.apply(post.init(jax.random.key(0), x, train=False), x, train=False,
                       return_features=True)
    assert not jnp.any(feats["stage1"] < 0)


# --- zero-init, stochastic depth, dropout --------------------------------------------

@pytest.mark.parametrize("preact", [False, True])
def test_zero_init_residual_starts_every_block_as_identity(preact):
    x = small_input("resnet20")
    model = models.create("resnet20", zero_init_residual=True, preact=preact)
    variables = model.init(jax.random.key(0), x, train=False)
    params = variables["params"]
    if preact:
        assert not jnp.any(params["layer1_0"]["conv2"]["kernel"])
    else:
        assert not jnp.any(params["layer1_0"]["bn2"]["scale"])
    feats = model.apply(variables, x, train=False, return_features=True)
    np.testing.assert_allclose(feats["stage1"], feats["stem"], atol=1e-6)
    default = models.create("resnet20").init(jax.random.key(0), x, train=False)
    assert jnp.all(default["params"]["layer1_0"]["bn2"]["scale"] == 1)


def _drop_rates(model, x):
    rates = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, layers.DropPath) and context.method_name == "__call__":
            rates.append(context.module.rate)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    return rates


def test_stochastic_depth_follows_the_linear_rule():
    x = small_input("resnet20")
    rates = _drop_rates(models.create("resnet20", stochastic_depth=0.5), x)
    np.testing.assert_allclose(rates, [0.5 * (i + 1) / 9 for i in range(9)])


def test_stochastic_depth_is_random_in_training_and_off_in_eval():
    x = small_input("resnet20")
    model = models.create("resnet20", stochastic_depth=0.5)
    variables = model.init(jax.random.key(0), x, train=False)
    base = models.create("resnet20").apply(variables, x, train=False)
    np.testing.assert_allclose(model.apply(variables, x, train=False), base, atol=1e-6)

    def run(seed):
        out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                             rngs={"dropout": jax.random.key(seed)})
        return out

    assert not np.allclose(run(0), run(1))
    np.testing.assert_array_equal(run(3), run(3))
    with pytest.raises(ValueError, match="plain"):
        models.create("resnet20", stochastic_depth=0.1, plain=True).init(
            jax.random.key(0), x, train=False)


def test_drop_path_drops_whole_samples_and_rescales():
    x = jnp.ones((64, 2, 2, 3))
    y = layers.DropPath(0.5, deterministic=False).apply({}, x, rngs={"dropout":
                                                                     jax.random.key(0)})
    per_sample = np.unique(np.asarray(y).reshape(64, -1), axis=1)
    assert per_sample.shape == (64, 1) and set(per_sample[:, 0]) == {0.0, 2.0}


def test_block_dropout_is_random_in_training():
    x = small_input("wrn_16_4")
    model = models.create("wrn_16_4")
    variables = model.init(jax.random.key(0), x, train=False)
    a, _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                       rngs={"dropout": jax.random.key(0)})
    b, _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                       rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(a, b)


# --- initializers, BN convention, dtype, width, SE --------------------------------------

@pytest.mark.parametrize("conv_init, std", [
    ("kaiming_fan_out", math.sqrt(2 / (9 * 64))),   # torch: normal, var 2 / fan_out
    ("flax_default", math.sqrt(1 / (9 * 64))),      # lecun_normal: var 1 / fan_in
    ("keras_default", math.sqrt(2 / (2 * 9 * 64))),  # glorot: var 2 / (fan_in + fan_out)
])
def test_conv_initializer(conv_init, std):
    model = models.create("resnet20", conv_init=conv_init, width_multiplier=2)
    params = model.init(jax.random.key(0), small_input("resnet20"), train=False)["params"]
    kernel = params["layer2_1"]["conv1"]["kernel"]  # 3x3, 64 -> 64 channels
    assert kernel.shape == (3, 3, 64, 64)
    assert abs(float(kernel.std()) / std - 1) < 0.05
    with pytest.raises(ValueError, match="conv_init"):
        models.create("resnet20", conv_init="he").init(jax.random.key(0), small_input(
            "resnet20"), train=False)


def test_bn_momentum_conventions_agree():
    x = small_input("resnet20")
    flax_model = models.create("resnet20", bn_momentum=0.9)
    torch_model = models.create("resnet20", bn_momentum=0.1, bn_convention="torch")
    variables = flax_model.init(jax.random.key(0), x, train=False)
    _, a = flax_model.apply(variables, x, train=True, mutable=["batch_stats"])
    _, b = torch_model.apply(variables, x, train=True, mutable=["batch_stats"])
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert layers.flax_momentum(0.1, "torch") == pytest.approx(0.9)
    assert layers.flax_momentum(0.99, "flax") == 0.99
    with pytest.raises(ValueError, match="bn_convention"):
        layers.flax_momentum(0.1, "keras")


def test_bn_epsilon_is_passed_through():
    x = small_input("resnet20")
    a = models.create("resnet20", bn_epsilon=1e-5)
    b = models.create("resnet20", bn_epsilon=10.0)
    variables = a.init(jax.random.key(0), x, train=False)
    assert not np.allclose(a.apply(variables, x, train=False), b.apply(variables, x,
                                                                     train=False))


@pytest.mark.parametrize("dtype", _mark(["bfloat16", "float16"], {"bfloat16"}))
def test_low_precision_compute_keeps_float32_params(dtype):
    x = small_input("resnet20")
    model = models.create("resnet20", dtype=dtype)
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)
    assert {p.dtype for p in jax.tree.leaves(variables)} == {jnp.dtype("float32")}
    feats = jax.jit(lambda v: model.apply(v, x, train=False, return_features=True))(variables)
    assert feats["stage1"].dtype == jnp.dtype(dtype) and feats["logits"].dtype == jnp.float32
    reference = jax.jit(lambda v: models.create("resnet20").apply(v, x, train=False))(variables)
    np.testing.assert_allclose(feats["logits"], reference, atol=0.1, rtol=0.1)
    if dtype == "bfloat16":  # the mixed-precision training setting
        loss, _, _ = jax.jit(lambda v: train_step(model, x, jnp.array([0, 1]), v))(variables)
        assert bool(jnp.isfinite(loss))


def test_width_multiplier_scales_every_width():
    model = models.create("resnet20", width_multiplier=2)
    params = shapes(model, (32, 32, 3))["params"]
    assert params["conv1"]["kernel"].shape == (3, 3, 3, 32)
    assert params["layer3_2"]["conv2"]["kernel"].shape == (3, 3, 128, 128)
    assert params["fc"]["kernel"].shape == (128, 10)
    half = shapes(models.create("resnet50", width_multiplier=0.5), (64, 64, 3))["params"]
    assert half["fc"]["kernel"].shape == (1024, 1000)


def test_squeeze_excitation_is_a_switch():
    plain = count(shapes(models.create("resnet18"), (32, 32, 3))["params"])
    se = shapes(models.create("resnet18", se_reduction=16), (32, 32, 3))["params"]
    assert se["layer4_1"]["se"]["fc1"]["kernel"].shape == (1, 1, 512, 32)
    # Two 1x1 convs with bias per block, hidden width r = se_width(c, 16): 2cr + r + c.
    expected = sum(2 * (2 * c * se_width(c, 16) + se_width(c, 16) + c)
                   for c in (64, 128, 256, 512))
    assert count(se) - plain == expected
    assert se_width(64, 16) == 8 and se_width(256, 16) == 16  # timm's make_divisible


def test_features_expose_stem_and_every_stage():
    model = models.create("resnet50", width_multiplier=0.25)
    x = jnp.zeros((1, 64, 64, 3))
    feats = jax.eval_shape(lambda: model.init_with_output(
        jax.random.key(0), x, train=False, return_features=True)[0])
    assert {k: v.shape for k, v in feats.items()} == {
        "stem": (1, 16, 16, 16), "stage1": (1, 16, 16, 64), "stage2": (1, 8, 8, 128),
        "stage3": (1, 4, 4, 256), "stage4": (1, 2, 2, 512), "pooled": (1, 512),
        "logits": (1, 1000)}


def test_keras_tutorial_resnet34_uses_keras_defaults():
    model = models.create("keras_resnet34")
    assert (model.bn_momentum, model.bn_epsilon, model.conv_init) == (0.99, 1e-3,
                                                                      "keras_default")
    assert tuple(model.stage_sizes) == (3, 4, 6, 3) and model.num_classes == 10
