"""Model options a config can set: groups/base_width, conv_bias, conv_init he_normal,
activation. Defaults leave every registered model as it was."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from resnet_flax import models
from resnet_flax.models import norms


def shapes(name, **kw):
    model = models.create(name, **kw)
    h, w, c = models.spec(name).input_shape
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, h, w, c)),
                                                  train=False))
    return {"/".join(k): v.shape for k, v in traverse_util.flatten_dict(variables).items()}


def test_groups_and_base_width_make_resnet50_a_resnext():
    # torchvision's resnext50_32x4d is resnet50 with groups=32, width_per_group=4.
    assert shapes("resnet50", groups=32, base_width=4) == shapes("resnext50_32x4d")
    assert shapes("resnet50", base_width=128) == shapes("wide_resnet50_2")
    assert shapes("resnet50", groups=32, base_width=4) != shapes("resnet50")


def test_conv_bias_adds_one_zero_bias_per_conv_output_channel():
    plain, biased = shapes("resnet20"), shapes("resnet20", conv_bias=True)
    convs = {k for k in plain if k.endswith("kernel") and len(plain[k]) == 4}
    assert set(biased) - set(plain) == {k.replace("kernel", "bias") for k in convs}
    for k in convs:
        assert biased[k.replace("kernel", "bias")] == (plain[k][-1],)
    model = models.create("resnet20", conv_bias=True)
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)["params"]
    assert not np.any(np.asarray(params["conv1"]["bias"]))


def test_he_normal_is_keras_truncated_normal_with_variance_two_over_fan_in():
    model = models.create("resnet20", conv_init="he_normal")
    params = model.init(jax.random.key(1), jnp.zeros((1, 32, 32, 3)), train=False)["params"]
    kernel = np.asarray(params["layer3_2"]["conv1"]["kernel"])  # 3x3x64 -> 64
    std = math.sqrt(2.0 / (3 * 3 * 64))
    assert kernel.std() == pytest.approx(std, rel=0.05)
    # Keras draws from a normal of std / 0.8796 truncated at two of its stds (which
    # leaves std as the kernel's); an untruncated normal would pass this bound.
    bound = 2 * std / 0.87962566
    assert bound * 0.95 < np.abs(kernel).max() <= bound + 1e-6


def stem_features(activation):
    model = models.create("resnet20", activation=activation)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    variables = model.init(jax.random.key(1), x, train=False)
    return np.asarray(model.apply(variables, x, train=False, return_features=True)["stem"])


def test_activation_is_applied_after_each_norm():
    relu, leaky, silu = (stem_features(a) for a in ("relu", "leaky_relu", "silu"))
    assert relu.min() == 0.0
    pre = np.where(leaky > 0, leaky, leaky / 0.01)  # Invert slope-0.01 leaky ReLU.
    np.testing.assert_allclose(relu, np.maximum(pre, 0), atol=1e-5)
    np.testing.assert_allclose(silu, pre / (1 + np.exp(-pre)), atol=1e-4)


def test_defaults_build_the_same_variables_as_before():
    # The new options at their defaults are the registered models unchanged.
    for name in ("resnet18", "resnext29_8x64d", "preact_resnet18", "resnet50d"):
        assert shapes(name) == shapes(name, conv_bias=False, activation="relu")
    assert shapes("resnext29_8x64d") == shapes("resnext29_8x64d", groups=8)


def test_group_norm_equals_torchs():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 16)).astype(np.float32)
    scale = np.random.default_rng(1).normal(size=16).astype(np.float32)
    bias = np.random.default_rng(2).normal(size=16).astype(np.float32)
    ours = norms.GroupNorm(norm_groups=4).apply({"params": {"scale": scale, "bias": bias}}, x)
    ref = torch.nn.GroupNorm(4, 16, eps=1e-5)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(scale))
        ref.bias.copy_(torch.from_numpy(bias))
        expected = ref(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_group_and_no_norm_keep_the_parameter_names_and_drop_the_statistics():
    batch = shapes("resnet20")
    group = shapes("resnet20", norm="group")
    assert group == {k: v for k, v in batch.items() if k.startswith("params/")}
    none = shapes("resnet20", norm="none")
    assert set(none) == {k for k in batch if k.startswith("params/") and "/bn" not in k}
    model = models.create("resnet20", norm="group", norm_groups=8)
    x = jax.random.normal(jax.random.key(0), (3, 32, 32, 3))
    variables = model.init(jax.random.key(1), x, train=False)
    # Per example: training and evaluation compute the same thing, batch or not.
    np.testing.assert_allclose(model.apply(variables, x, train=True),
                               model.apply(variables, x, train=False), atol=1e-6)
    np.testing.assert_allclose(model.apply(variables, x[:1], train=False),
                               model.apply(variables, x, train=False)[:1], atol=1e-5)


def test_zero_init_residual_needs_a_norm_scale():
    with pytest.raises(ValueError, match="norm='none' has none"):
        models.create("resnet20", norm="none", zero_init_residual=True)
    models.create("preact_resnet18", norm="none", zero_init_residual=True)  # Zeroes a conv.


def test_each_option_is_declared_once_and_the_schema_and_docs_follow_the_declarations():
    from conftest import REPO

    from resnet_flax.config import default_config
    from resnet_flax.models import options

    declared = [o.name for owned in options.OWNERS.values() for o in owned]
    assert len(declared) == len(set(declared))
    schema = default_config().model_options
    assert set(schema) == set(declared)
    for name, option in options.DECLARED.items():  # The schema holds the declared type.
        assert schema.get_ref(name).get_type() is option.kind, name
    # Where an option sets a part's attribute, the attribute takes the option's name.
    assert {"activation", "dtype", "width_multiplier"} <= set(options.NET_FIELDS)
    assert set(options.BLOCK_OPTIONS) <= set(models.Bottleneck.__dataclass_fields__)
    assert "norm_groups" in norms.GroupNorm.__dataclass_fields__
    assert options.markdown_table() in (REPO / "docs" / "models.md").read_text()


def test_an_options_value_is_checked_where_it_is_declared():
    from resnet_flax.config import ConfigError, default_config
    from resnet_flax.models import configured

    with pytest.raises(ValueError, match=r"'resnet20': norm_groups=0 must be >= 1$"):
        models.create("resnet20", norm="group", norm_groups=0)
    config = default_config()
    config.model_options.stem = "cifr"
    with pytest.raises(ConfigError, match=r"^config.model_options.stem='cifr' is not one of "
                                          r"\('imagenet', .*; did you mean 'cifar'\?$"):
        configured.check(config)


def test_bn_batch_normalises_each_slice_of_that_many_images_by_its_own_statistics():
    x = jax.random.normal(jax.random.key(0), (8, 32, 32, 3))
    sliced = models.create("resnet20", bn_batch=4)
    whole = models.create("resnet20")
    # Compiled: op by op, each op of each shape compiles a program of its own.
    variables = jax.jit(lambda x: whole.init(jax.random.key(1), x, train=False))(x)
    assert jax.tree.structure(variables) == jax.tree.structure(  # The same variables.
        jax.eval_shape(lambda: sliced.init(jax.random.key(1), x, train=False)))

    def train_pass(model):
        return jax.jit(lambda x: model.apply(variables, x, train=True, mutable=["batch_stats"]))

    y, stats = train_pass(sliced)(x)
    whole_pass = train_pass(whole)
    halves = [whole_pass(half) for half in (x[:4], x[4:])]
    np.testing.assert_allclose(y, np.concatenate([h[0] for h in halves]), atol=1e-5)
    # The running statistics move by the slices' mean, as one worker's each would.
    expected = jax.tree.map(lambda a, b: (np.asarray(a) + np.asarray(b)) / 2, halves[0][1],
                            halves[1][1])
    for got, want in zip(jax.tree.leaves(stats), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(y, whole_pass(x)[0], atol=1e-3)
    from resnet_flax.models import layer_table  # Its summary counts the same parameters.

    assert layer_table.summarize("resnet20", bn_batch=4).params == (
        layer_table.summarize("resnet20").params)


def test_bn_batch_is_refused_where_it_cannot_mean_anything():
    from resnet_flax.config import ConfigError, default_config
    from resnet_flax.models import configured

    with pytest.raises(ValueError, match="bn_batch=4 sets BatchNorm's batch; GroupNorm has no"):
        models.create("resnet20", norm="group", bn_batch=4)
    config = default_config()
    config.batch_size, config.model_options.bn_batch = 128, 48
    with pytest.raises(ConfigError, match=r"^config.model_options.bn_batch=48: a batch of 128 "
                                          r"does not split into slices of 48 images"):
        configured.check(config)
