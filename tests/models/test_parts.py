"""The network from parts: a new block, stem or norm is one class (or function) and one
registry line (a stem declares its layers), and the config's options reach it through
the part's own fields."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from resnet_flax import models
from resnet_flax.config import default_config
from resnet_flax.models import registry, stems
from resnet_flax.train import optim, parallel


class TwoConvBlock(models.Block):
    """A block of one's own: two 3x3 convs, no norm, on whatever shortcut the net has."""

    @nn.compact
    def __call__(self, x):
        y = self.activation(self.conv(self.features, 3, self.strides, name="conv1")(x))
        y = self.conv(self.features, 3, 1, name="conv2")(y)
        return self.activation(self.add_shortcut(y, self.make_shortcut(self.features), x))


@stems.makes("patchify", "patch_norm")
def strided_stem(x, width, *, conv, norm, activation, norm_last=True):
    """A stem of one's own: one 3x3 conv of stride 2, its layers named its own way."""
    x = conv(width, 3, 2, name="patchify")(x)
    return activation(norm(name="patch_norm")(x)) if norm_last else x


def undeclared_stem(x, width, *, conv, norm, activation, norm_last=True):
    return activation(norm(name="patch_norm")(conv(width, 3, 2, name="patchify")(x)))


class RMSNorm(nn.Module):
    """A norm of one's own: each position's channels divided by their root mean square."""

    use_running_average: bool | None = None
    dtype: jnp.dtype = jnp.float32
    scale_init: nn.initializers.Initializer = nn.initializers.ones

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", self.scale_init, (x.shape[-1],))
        y = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + 1e-6)
        return (y * scale).astype(self.dtype)


@pytest.fixture
def own_registry(monkeypatch):
    """Registrations made in a test, undone after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def names_and_shapes(model, x):
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    return {"/".join(k): v.shape for k, v in traverse_util.flatten_dict(variables).items()}


def test_a_new_block_is_one_class_and_one_registry_line(own_registry):
    models.register("two_conv_net", models.net((1, 1), (8, 16), TwoConvBlock,
                                               stem=models.cifar_stem, stem_width=8),
                    num_classes=10, input_shape=(32, 32, 3))
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    model = models.create("two_conv_net")
    shapes = names_and_shapes(model, x)
    assert shapes["params/layer1_0/conv2/kernel"] == (3, 3, 8, 8)
    assert shapes["params/layer2_0/downsample/conv/kernel"] == (1, 1, 8, 16)  # B, by default.
    assert not any("layer1_0/bn" in k for k in shapes)
    variables = model.init(jax.random.key(0), x, train=False)
    assert model.apply(variables, x, train=False).shape == (2, 10)
    # The network's options reach it: option A's parameter-free shortcut, a plain twin.
    assert not any("downsample" in k for k in names_and_shapes(
        models.create("two_conv_net", shortcut="A"), x))
    assert models.create("plain_two_conv_net").shortcut is None
    # Its own fields are its options: it has no zero-init.
    with pytest.raises(ValueError, match="zero_init_residual=True is not an option of "
                                         "TwoConvBlock"):
        models.create("two_conv_net", zero_init_residual=True)


def test_a_new_stem_and_norm_are_parts_like_the_built_in_ones(own_registry):
    models.register("strided_rms_net", models.net(
        (1, 1), (8, 16), stem=strided_stem, stem_width=8, norm=RMSNorm), num_classes=10,
        input_shape=(32, 32, 3))
    model = models.create("strided_rms_net", zero_init_residual=True)
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    feats = model.apply(variables, x, train=False, return_features=True)
    assert feats["stem"].shape == (4, 16, 16, 8)
    assert "batch_stats" not in variables  # RMSNorm keeps no statistics.
    assert not np.any(variables["params"]["layer1_0"]["bn2"]["scale"])  # Zero-init reached it.
    # Per example, so the same in training; and the parallel layer leaves it as it is.
    np.testing.assert_allclose(model.apply(variables, x, train=True), feats["logits"],
                               atol=1e-6)
    mode = parallel.mode("pmap", parallel.make_mesh())
    assert mode.step_model(model, sync_batch_stats=True).norm is RMSNorm


def test_a_new_stem_freezes_the_layers_it_declares_and_one_that_declares_none_is_refused(
        own_registry):
    models.register("strided_net", models.net((1, 1), (8, 16), stem=strided_stem,
                                              stem_width=8), num_classes=10,
                    input_shape=(16, 16, 3))
    config = default_config()
    config.model, config.freeze, config.optimizer, config.momentum = "strided_net", "stem", \
        "sgd", 0.0
    model = models.create("strided_net", frozen=("stem",))
    params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False)["params"]
    tx = optim.optimizer(config, optax.constant_schedule(0.1), part_of=model.part_of)
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
    moved = {name: any(np.any(u) for u in jax.tree.leaves(updates[name])) for name in params}
    assert moved == {"patchify": False, "patch_norm": False, "layer1_0": True,
                     "layer2_0": True, "fc": True}

    models.register("undeclared_net", models.net((1, 1), (8, 16), stem=undeclared_stem,
                                                 stem_width=8), num_classes=10,
                    input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="stem 'undeclared_stem' does not declare its layers"):
        models.create("undeclared_net").init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)),
                                             train=False)


def test_the_options_land_on_the_parts_that_own_them():
    model = models.create("resnet50", groups=32, base_width=4, preact=True, conv_bias=True,
                          bn_momentum=0.1, bn_convention="torch", shortcut="D", stem="deep")
    assert models.part_class(model.block) is models.PreActBottleneck
    assert models.part_settings(model.block) == {"groups": 32, "base_width": 4}
    assert model.conv.keywords["conv_bias"] is True
    assert model.norm.keywords["momentum"] == pytest.approx(0.9)
    assert model.shortcut is models.AvgDownShortcut and model.stem is models.deep_stem
    with pytest.raises(ValueError, match="'resnet20': stem='vit' is not one of"):
        models.create("resnet20", stem="vit")


def test_the_space_to_depth_stem_is_the_7x7_stride_2_convolution_rewritten():
    plain, s2d = models.create("resnet18"), models.create("resnet18", stem="imagenet_s2d")
    x = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
    variables = plain.init(jax.random.key(0), x, train=False)
    assert names_and_shapes(s2d, x) == names_and_shapes(plain, x)  # Same weights, shared.

    def stem_and_grad(model):
        def loss(params):
            out = model.apply({**variables, "params": params}, x, train=False,
                              return_features=True)
            return jnp.sum(out["stem"] ** 2), out["stem"]
        (_, stem), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
        return stem, grads["conv1"]["kernel"]

    (a, grad_a), (b, grad_b) = stem_and_grad(plain), stem_and_grad(s2d)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(jnp.abs(a).max()))
    np.testing.assert_allclose(grad_b, grad_a, rtol=1e-4, atol=1e-4 * float(jnp.abs(
        grad_a).max()))
    with pytest.raises(ValueError, match="even image size, not 63x64"):
        s2d.init(jax.random.key(0), jnp.zeros((1, 63, 64, 3)), train=False)
