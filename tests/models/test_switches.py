"""Every ablation switch of the zoo does what it says: shortcut options A-D, plain nets,
pre-activation, zero-init residuals, stochastic depth and dropout, initialisers, BatchNorm
conventions, compute dtypes, widths, squeeze-excitation, features."""

from __future__ import annotations

import math
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_zoo import PARAM_COUNTS, _mark, count, flat_names, shapes, small_input, train_step

from resnet_flax import models
from resnet_flax.models import cross_device, layers, norms
from resnet_flax.models.blocks import se_width


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
    sc = models.PadShortcut(32, 2)
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
    sc = models.AvgDownShortcut(8, 2, norm=partial(nn.BatchNorm, use_running_average=True))
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
    dropout = partial(cross_device.Dropout, deterministic=False)
    y = layers.DropPath(0.5, dropout).apply({}, x, rngs={"dropout": jax.random.key(0)})
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
    assert norms.flax_momentum(0.1, "torch") == pytest.approx(0.9)
    assert norms.flax_momentum(0.99, "flax") == 0.99
    with pytest.raises(ValueError, match=r"bn_convention='keras' is not one of \('flax', "):
        models.create("resnet20", bn_momentum=0.1, bn_convention="keras")
    with pytest.raises(ValueError, match=r"bn_momentum=1.5 must be in \[0.0, 1.0\]"):
        models.create("resnet20", bn_momentum=1.5)


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
    assert (model.norm.keywords["momentum"], model.norm.keywords["epsilon"]) == (0.99, 1e-3)
    assert model.conv.keywords["conv_init"] is layers.CONV_INITS["keras_default"]
    assert tuple(model.stage_sizes) == (3, 4, 6, 3) and model.num_classes == 10
