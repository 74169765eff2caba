"""Any optax optimizer by name with ``optimizer_options``; the five older names unchanged."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl import flags
from conftest import REPO
from ml_collections import config_flags

from resnet_flax import cli
from resnet_flax.config import ConfigError, default_config
from resnet_flax.run.validate import validate
from resnet_flax.train import optim

LR = optax.constant_schedule(0.01)
PARAMS = {"conv": {"kernel": jnp.linspace(-1.0, 1.0, 12).reshape(2, 2, 3)},
          "bn": {"scale": jnp.array([1.0, 2.0])}}


def config(options=None, **fields):
    c = default_config()
    c.update(fields)
    c.optimizer_options.update(options or {})
    return c


def steps(tx, n=3):
    """``tx``'s updates over ``n`` steps of fixed gradients, applied as training does."""
    params, state, out = PARAMS, tx.init(PARAMS), []
    for i in range(n):
        grads = jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1)) + 0.1, params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(updates)
    return out, state


def assert_same(tx, reference):
    (ours, state), (theirs, ref_state) = steps(tx), steps(reference)
    assert jax.tree.structure(state) == jax.tree.structure(ref_state)  # Checkpoints match.
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), ours, theirs)


def test_rmsprop_by_name_is_optax_rmsprop_with_the_options():
    options = {"decay": 0.95, "centered": True, "momentum": 0.5}
    c = config(options, optimizer="rmsprop")
    validate(c)
    assert_same(optim.base_optimizer(c, LR), optax.rmsprop(LR, **options))


def test_weight_decay_is_optax_own_where_it_has_one_else_l2():
    c = config(optimizer="rmsprop", weight_decay=0.1, decay_bn_and_bias=False)
    assert_same(optim.base_optimizer(c, LR), optax.chain(
        optax.add_decayed_weights(0.1, optim.decay_mask), optax.rmsprop(LR)))
    c = config({"b2": 0.98}, optimizer="lion", weight_decay=0.1, decay_bn_and_bias=False)
    assert_same(optim.base_optimizer(c, LR),
                optax.lion(LR, b2=0.98, weight_decay=0.1, mask=optim.decay_mask))


def _if_chain(c, lr):
    """The optimizers as ``base_optimizer`` built them before any optax name served."""
    mask = None if c.decay_bn_and_bias else optim.decay_mask
    if c.optimizer == "lars":
        return optax.lars(lr, weight_decay=c.weight_decay, weight_decay_mask=mask or True,
                          trust_coefficient=c.trust_coefficient, trust_ratio_mask=mask or True,
                          momentum=c.momentum, nesterov=c.nesterov)
    if c.optimizer in ("lamb", "adamw"):
        return getattr(optax, c.optimizer)(lr, b1=c.b1, b2=c.b2, eps=c.eps,
                                           weight_decay=c.weight_decay, mask=mask)
    base = (optax.sgd(lr, momentum=c.momentum or None, nesterov=c.nesterov)
            if c.optimizer == "sgd" else optax.adam(lr, b1=c.b1, b2=c.b2, eps=c.eps))
    if not c.weight_decay:
        return base
    return optax.chain(optax.add_decayed_weights(c.weight_decay, mask), base)


@pytest.mark.parametrize("name", optim.CONFIG_FIELDS)
@pytest.mark.parametrize("fields", [
    {"weight_decay": 0.0, "momentum": 0.0},
    {"weight_decay": 0.05, "decay_bn_and_bias": False, "nesterov": True, "b1": 0.8,
     "b2": 0.99, "eps": 1e-6, "trust_coefficient": 0.01, "momentum": 0.8},
])
def test_the_five_older_names_build_what_they_did(name, fields):
    c = config(optimizer=name, **fields)
    assert_same(optim.base_optimizer(c, LR), _if_chain(c, LR))


def test_an_option_adds_a_keyword_to_one_of_the_five():
    c = config({"nesterov": True}, optimizer="adamw", weight_decay=0.1)
    assert_same(optim.base_optimizer(c, LR), optax.adamw(
        LR, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1, nesterov=True))


def test_optimizers_are_optax_functions_with_a_learning_rate():
    names = optim.optax_optimizers()
    assert {"rmsprop", "adabelief", "lion", "nadam", *optim.CONFIG_FIELDS} <= set(names)
    assert not {"chain", "scale_by_adam", "scale_by_learning_rate", *optim.UNUSABLE} & set(names)


# noisy_sgd wants a JAX key for its noise, which no config value can be.
@pytest.mark.filterwarnings("ignore:Specifying a key will be required")
@pytest.mark.parametrize("name", optim.optax_optimizers())
def test_every_optax_optimizer_steps_under_jit(name):
    tx = optim.optimizer(config(optimizer=name, weight_decay=1e-4, grad_clip_norm=1.0), LR)
    grads = jax.tree.map(lambda p: p + 0.5, PARAMS)
    updates, _ = jax.jit(tx.update)(grads, tx.init(PARAMS), PARAMS)
    assert all(bool(jnp.isfinite(u).all()) for u in jax.tree.leaves(updates))
    assert float(optax.tree.norm(updates)) > 0


@pytest.mark.parametrize("fields,expected", [
    ({"optimizer": "rmsprob"},
     "config.optimizer='rmsprob' is not an optax optimizer; did you mean 'rmsprop'"),
    ({"optimizer": "chain"}, "config.optimizer='chain' is not an optax optimizer; optax's "
                             "are adabelief, "),
    ({"optimizer": "lbfgs"}, "config.optimizer='lbfgs': optax.lbfgs needs the loss itself"),
    ({"optimizer": "sm3"}, "config.optimizer='sm3': optax.sm3 takes a fixed learning rate"),
    ({"optimizer": "rmsprop", "options": {"decy": 0.9}},
     "config.optimizer_options.decy: optax.rmsprop takes no 'decy'; did you mean 'decay'? "
     "(its options: decay, eps, initial_scale, "),
    ({"optimizer": "sgd", "options": {"momentum": 0.5}},
     "config.optimizer_options.momentum: optax.sgd's momentum comes from config.momentum"),
    ({"optimizer": "adamw", "options": {"weight_decay": 0.1}},
     "optax.adamw's weight_decay comes from config.weight_decay"),
    ({"optimizer": "novograd", "weight_decay": 0.1, "decay_bn_and_bias": False},
     "config.decay_bn_and_bias=False: optax.novograd has no mask for its weight decay"),
])
def test_a_bad_name_or_option_is_one_line(fields, expected):
    with pytest.raises(ConfigError) as err:
        validate(config(fields.pop("options", None), **fields))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_options_come_from_the_command_line_as_one_dict(monkeypatch):
    argv = ["--config", str(REPO / "configs/fashion_mnist.py"), "--config.optimizer=rmsprop",
            "--config.optimizer_options={'decay': 0.95, 'centered': True}"]
    cli.check_config_args(argv)
    values = flags.FlagValues()  # As main defines --config, away from main's own flags.
    flag = config_flags.DEFINE_config_file("config", flag_values=values, lock_config=True)
    monkeypatch.setattr(sys, "argv", ["main", *argv])  # config_flags reads overrides here.
    values(sys.argv)
    assert flag.value.optimizer_options.to_dict() == {"decay": 0.95, "centered": True}
    validate(flag.value)
