"""The CPU fast path: conv inputs materialised once, Eigen convolutions by flag."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from resnet_flax import models
from resnet_flax.cli import host_devices
from resnet_flax.models import conv_impl

DN = ("NHWC", "HWIO", "NHWC")


def _conv(fn, x, w):
    return fn(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN)


def test_materialised_conv_is_bit_identical_with_its_gradients():
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (4, 8, 8, 5))
    w = jax.random.normal(kw, (3, 3, 5, 6))
    g = jax.random.normal(kg, (4, 8, 8, 6))

    def grads(fn):
        y, vjp = jax.vjp(lambda x, w: _conv(fn, jnp.maximum(x, 0) + x, w), x, w)
        return (y, *vjp(g))

    ours = jax.jit(lambda: grads(conv_impl.conv_general_dilated))()
    plain = jax.jit(lambda: grads(lax.conv_general_dilated))()
    for a, b in zip(ours, plain, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_conv_input_is_materialised_on_cpu_only():
    x, w = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2))
    hlo = jax.jit(lambda x, w: _conv(conv_impl.conv_general_dilated, x, w)).lower(x, w)
    assert "divide" in hlo.as_text()  # Survives to XLA: the runtime 1.0 is not foldable.
    assert jax.default_backend() == "cpu"


def test_train_step_has_no_recomputed_residual_chain_in_transposes(optimized):
    """XLA:CPU must not fuse earlier blocks' BN/ReLU chain into the transposes."""
    model = models.create("resnet20", num_classes=10)
    x = jnp.ones((8, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)

    def loss(params):
        out, _ = model.apply({**variables, "params": params}, x, train=True,
                             mutable=["batch_stats"])
        return out.sum()

    text = jax.jit(jax.grad(loss)).lower(variables["params"]).compile().as_text()
    # The weight-gradient transposes of the first stage's inputs, (C, H, W, N) = (16, 32, 32, 8):
    # from the materialised input they read one operand; re-fusing the residual chain
    # made them read 5 more per block recomputed (5, 10, 15, 20 measured without it).
    operands = [m.group(1).count("%") for m in re.finditer(
        r"= f32\[16,32,32,8\]\S* fusion\((.*?)\), kind", text)]
    assert len(operands) >= 6, "expected the first stage's weight-gradient transposes"
    assert max(operands) == 1, operands


@pytest.fixture
def xla_flags(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    return monkeypatch


def test_eigen_convs_flag_added_for_measured_jaxlib_only(xla_flags):
    assert not host_devices.eigen_convs("0.11.0")
    assert "XLA_FLAGS" not in os.environ
    assert host_devices.eigen_convs("0.10.2")
    assert "ynn_fusion_type=-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION" in os.environ["XLA_FLAGS"]
    assert host_devices.default_count() == 1  # Eigen convs already use every core.


def test_users_ynn_setting_wins(xla_flags):
    xla_flags.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    assert not host_devices.eigen_convs("0.10.2")
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="
    host_devices.split_cpu()
    assert os.environ["XLA_FLAGS"].endswith(
        f"--xla_force_host_platform_device_count={host_devices.default_count()}")
