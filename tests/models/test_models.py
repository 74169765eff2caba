"""The first-cut model families: shapes, exact parameter counts, modes, errors."""

import jax
import jax.numpy as jnp
import pytest

from resnet_flax import models
from resnet_flax.models import layers


def param_count(name, num_classes, image_size, channels=3, **kw):
    model = models.create(name, num_classes=num_classes, **kw)
    x = jnp.zeros((1, image_size, image_size, channels))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    return sum(p.size for p in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("name,expected", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032)])
def test_imagenet_param_counts_equal_torchvision(name, expected):
    assert param_count(name, 1000, 64) == expected


@pytest.mark.parametrize("name,expected", [("resnet20", 269_722), ("resnet110", 1_727_962)])
def test_cifar_param_counts_equal_he_et_al_option_a(name, expected):
    # He et al. 2015 table 6: 0.27M and 1.7M.
    assert param_count(name, 10, 32) == expected


@pytest.mark.parametrize("name,size,channels,classes,stage_shapes", [
    ("resnet18", 64, 3, 1000, [(16, 16, 64), (16, 16, 64), (8, 8, 128), (4, 4, 256),
                               (2, 2, 512)]),
    ("resnet20", 32, 3, 10, [(32, 32, 16), (32, 32, 16), (16, 16, 32), (8, 8, 64)]),
    ("cifar_resnet4", 32, 3, 10, [(32, 32, 64), (32, 32, 64), (16, 16, 128)]),
    ("fashion_mnist_resnet", 28, 1, 10, [(28, 28, 32), (28, 28, 32), (14, 14, 64),
                                         (7, 7, 128)]),
])
def test_output_and_feature_shapes(name, size, channels, classes, stage_shapes):
    model = models.create(name, num_classes=classes)
    x = jnp.ones((2, size, size, channels))
    # Shapes only: traced, not run (test_zoo runs every net).
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    out = jax.eval_shape(lambda v: model.apply(v, x, train=False, return_features=True),
                         variables)
    assert out["logits"].shape == (2, classes)
    stages = [out["stem"]] + [out[f"stage{i}"] for i in range(1, len(stage_shapes))]
    assert [a.shape[1:] for a in stages] == stage_shapes


def test_strided_conv_pads_symmetrically_like_torch():
    # torch Conv2d(3, stride=2, padding=1) on 4x4 ones: the first output window covers
    # rows/cols -1..1, i.e. 4 ones. Flax 'SAME' would pad 0 before / 1 after and see 9.
    conv = layers.conv(1, 3, 2)
    x = jnp.ones((1, 4, 4, 1))
    params = {"params": {"kernel": jnp.ones((3, 3, 1, 1))}}
    out = conv.apply(params, x)
    assert out.shape == (1, 2, 2, 1)
    assert float(out[0, 0, 0, 0]) == 4.0 and float(out[0, 1, 1, 0]) == 9.0


def test_train_mode_updates_batch_stats_and_eval_mode_does_not():
    model = models.create("resnet20", num_classes=10)
    x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    _, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
    before = jax.tree.leaves(variables["batch_stats"])
    after = jax.tree.leaves(updated["batch_stats"])
    assert any(not jnp.allclose(a, b) for a, b in zip(before, after))
    logits_a = model.apply(variables, x, train=False)
    logits_b = model.apply(variables, x[:1], train=False)
    assert jnp.allclose(logits_a[:1], logits_b, atol=1e-5)  # eval: per-example


def test_plain_twin_has_no_projection_params():
    assert param_count("plain_resnet18", 1000, 64) < param_count("resnet18", 1000, 64)
    assert "plain_resnet20" not in models.names() and "resnet20" in models.names()


def test_unknown_model_names_the_closest_and_where_the_list_is():
    with pytest.raises(ValueError, match="did you mean 'resnet18'.*summary --zoo"):
        models.create("resnet19")


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="shortcutt"):
        models.create("resnet18", shortcutt="A")


def test_bfloat16_compute_keeps_float32_params():
    model = models.create("resnet20", num_classes=10, dtype="bfloat16")
    x = jnp.ones((2, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
    assert model.apply(variables, x, train=False).dtype == jnp.float32
