"""The benchmark's FLOP count where XLA gives none (XLA:GPU): convolutions and dot products
counted from the jaxpr, checked against hand counts and XLA:CPU's cost analysis."""

import jax
import jax.numpy as jnp
import pytest

from resnet_flax import create_model
from resnet_flax.speed import flops


def test_a_convolution_counts_two_flops_per_multiply_add_of_every_output():
    x = jnp.zeros((2, 8, 8, 3))
    w = jnp.zeros((3, 3, 3, 5))  # HWIO

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    assert flops.jaxpr_flops(conv, x, w) == 2 * (2 * 8 * 8 * 5) * (3 * 3 * 3)


def test_grouped_convolutions_count_only_each_groups_inputs():
    x = jnp.zeros((1, 4, 4, 8))
    w = jnp.zeros((1, 1, 2, 8))  # 4 groups of 2 input features

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=4,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    assert flops.jaxpr_flops(conv, x, w) == 2 * (4 * 4 * 8) * 2


def test_dot_products_inside_a_jit_and_a_scan_are_counted_each_time_they_run():
    a, b = jnp.zeros((4, 6)), jnp.zeros((6, 3))

    def scanned(a, b):
        body = lambda c, _: (c + jax.jit(jnp.dot)(a, b), None)  # noqa: E731
        return jax.lax.scan(body, jnp.zeros((4, 3)), None, length=5)[0]

    assert flops.jaxpr_flops(scanned, a, b) == 5 * 2 * 4 * 3 * 6


def test_resnet20_forward_is_its_published_41_million_multiply_adds_per_image():
    model = create_model("resnet20", num_classes=10)
    x = jnp.zeros((2, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    count = flops.jaxpr_flops(lambda x: model.apply(variables, x, train=False), x)
    assert count / 2 / 2 == pytest.approx(40.55e6, rel=0.01)  # He et al.: 0.041 GMACs.


def test_a_train_step_count_is_near_xla_cpus_which_skips_padding_but_adds_elementwise():
    model = create_model("resnet20", num_classes=10)
    x = jnp.zeros((4, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)

    def loss(params, x):
        out, _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                             train=True, mutable=["batch_stats"])
        return out.sum()

    grad = jax.grad(loss)
    counted = flops.jaxpr_flops(grad, variables["params"], x)
    xla, source = flops.step_flops(grad, variables["params"], x)
    assert source == "XLA cost analysis"
    assert counted == pytest.approx(xla, rel=0.2)
    assert counted > 2.5 * flops.jaxpr_flops(
        lambda x: model.apply(variables, x, train=False), x)  # backward ~2x forward


def test_a_program_that_cannot_be_traced_has_no_count():
    assert flops.step_flops(lambda x: x.undefined_attribute, jnp.zeros(3)) == (None, None)
