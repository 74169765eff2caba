"""Fine-tuning: torchvision weights or another run as the start, a new head, frozen parts
(BatchNorm statistics included), and a smaller learning rate for the backbone."""

import conftest
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO
from flax import traverse_util
from runs import final_params, read_metrics

from resnet_flax import cli, models
from resnet_flax.config import ConfigError, default_config
from resnet_flax.run import finetune, train_loop
from resnet_flax.run.validate import validate
from resnet_flax.train import optim

RECIPE = str(REPO / "configs" / "finetune_fashion_mnist.py")


def tiny_config(data_dir, **changes):
    config = cli.load_config_file(RECIPE)
    values = {"data_dir": str(data_dir), "allow_download": False, "input_size": 16,
              "batch_size": 16, "eval_batch_size": 8, "num_epochs": 2, "lr": 0.02,
              "warmup_epochs": 0.0, "progress_bar": False, "checkpoint_every_steps": 100,
              **changes}
    for key, value in values.items():
        config[key] = value
    return config


def flat(tree):
    return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(tree).items()}


@pytest.mark.slow
def test_finetunes_torchvision_resnet18_with_a_new_head_and_a_frozen_stem(
        tiny_data_dir, torchvision_resnet18, tmp_path):
    from resnet_flax.models import torch_weights

    config = tiny_config(tiny_data_dir, init_from=str(torchvision_resnet18), num_epochs=2)
    train_loop.train_and_evaluate(config, str(tmp_path))
    _, tree = final_params(tmp_path)
    start = torch_weights.from_torch("resnet18", torchvision_resnet18)
    before = {**flat({"params": start["params"]}), **flat({"batch_stats": start["batch_stats"]})}
    after = {**flat({"params": tree["params"]}), **flat({"batch_stats": tree["batch_stats"]})}
    stem = [k for k in after if k.split("/")[1] in ("conv1", "bn1")]
    assert len(stem) == 5  # conv1 kernel; bn1 scale, bias, mean, var.
    for key in stem:  # Frozen: bit for bit, BatchNorm statistics included.
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    assert after["params/fc/kernel"].shape == (512, 10)  # The new head.
    rest = [k for k in after if k not in stem and not k.startswith("params/fc/")]
    assert all(not np.array_equal(after[k], before[k]) for k in rest)
    losses = [row["train_loss"] for row in read_metrics(tmp_path)]
    assert losses[-1] < losses[0]


def test_a_run_starts_from_another_runs_checkpoint(tiny_data_dir, tmp_path):
    config = conftest.tiny_config(tiny_data_dir, num_epochs=1)
    train_loop.train_and_evaluate(config, str(tmp_path / "source"))
    _, source = final_params(tmp_path / "source")

    config.init_from, config.init_head = str(tmp_path / "source"), "keep"
    model = models.create(config.model, num_classes=10, width_multiplier=0.25)
    fresh = model.init(jax.random.key(5), jnp.zeros((1, 28, 28, 1)), train=False)
    start = flat(finetune.initial_variables(config, fresh))
    trained = {**flat({"params": source["params"]}),
               **flat({"batch_stats": source["batch_stats"]})}
    assert start.keys() == trained.keys()
    for key in start:  # The head too: init_head="keep".
        np.testing.assert_array_equal(start[key], trained[key], err_msg=key)

    config.model = "resnet20"
    with pytest.raises(ConfigError, match="that run trained 'fashion_mnist_resnet', this "
                                          "config 'resnet20'"):
        finetune.source_variables(config)


def test_backbone_lr_multiplier_and_freeze_scale_each_group():
    config = default_config()
    config.model, config.optimizer, config.momentum = "resnet20", "sgd", 0.0
    config.freeze, config.backbone_lr_multiplier, config.weight_decay = "stem", 0.1, 1e-3
    model = models.create("resnet20", frozen=("stem",))
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)["params"]
    grads = jax.tree.map(jnp.ones_like, params)
    tx = optim.optimizer(config, optax.constant_schedule(0.5), part_of=model.part_of)
    updates, _ = tx.update(grads, tx.init(params), params)
    plain = optim.base_optimizer(config, optax.constant_schedule(0.5))
    reference, _ = plain.update(grads, plain.init(params), params)
    for name in params:
        factor = {"stem": 0.0, "head": 1.0}.get(model.part_of(name), 0.1)
        for u, r in zip(jax.tree.leaves(updates[name]), jax.tree.leaves(reference[name])):
            np.testing.assert_allclose(u, factor * r, rtol=1e-6, err_msg=name)


@pytest.mark.slow
def test_a_frozen_part_uses_and_keeps_its_running_statistics():
    model = models.create("resnet20", frozen=("stem", "stage1"))
    x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    stats = jax.tree.map(lambda s: s + 0.5, variables["batch_stats"])  # Not the init's.
    variables = {"params": variables["params"], "batch_stats": stats}
    train_out, new = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                 return_features=True)
    eval_out = model.apply(variables, x, train=False, return_features=True)
    np.testing.assert_array_equal(train_out["stage1"], eval_out["stage1"])
    assert not np.allclose(train_out["stage2"], eval_out["stage2"])
    for name in new["batch_stats"]:
        same = all(np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(new["batch_stats"][name]), jax.tree.leaves(stats[name])))
        assert same == (model.part_of(name) in ("stem", "stage1")), name

    def loss(params):
        out = model.apply({"params": params, "batch_stats": stats}, x, train=True,
                          mutable=["batch_stats"])[0]
        return jnp.sum(out ** 2)

    grads = jax.grad(loss)(variables["params"])
    for name, g in grads.items():  # No gradient flows back into the frozen prefix.
        zero = all(not np.any(leaf) for leaf in jax.tree.leaves(g))
        assert zero == (model.part_of(name) in ("stem", "stage1")), name


@pytest.mark.parametrize("changes,expected", [
    ({"freeze": "stem,stage5"}, "config.freeze='stem,stage5': ['stage5'] are not parts of"),
    ({"init_head": "old"}, "config.init_head='old' is not one of ('new', 'keep')"),
    ({"input_channels": 2}, "config.input_channels=2 must be 0"),
    ({"normalization": "imagenet", "input_channels": 0}, "needs 3-channel input"),
    ({"backbone_lr_multiplier": -1.0}, "config.backbone_lr_multiplier=-1.0 must be"),
])
def test_bad_fine_tuning_settings_are_named(changes, expected):
    config = cli.load_config_file(RECIPE)
    for key, value in changes.items():
        config[key] = value
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert expected in str(err.value)


def test_a_missing_source_fails_a_new_run_only():
    """A fine-tuned run's config stays valid when its source file is gone (resume, eval);
    a new run checks the file before any data loads."""
    config = cli.load_config_file(RECIPE)
    config.init_from = "/no/such/resnet18.pth"
    validate(config)
    with pytest.raises(ConfigError) as err:
        finetune.check_source(config)
    assert "config.init_from='/no/such/resnet18.pth': does not exist" in str(err.value)


def test_a_source_that_does_not_fit_is_refused_in_one_line(torchvision_resnet18):
    config = cli.load_config_file(RECIPE)
    config.init_from, config.init_head = str(torchvision_resnet18), "keep"
    fresh = models.create("resnet18", num_classes=10).init(
        jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    with pytest.raises(ConfigError) as err:
        finetune.initial_variables(config, fresh)
    assert "params/fc/bias has shape (1000,), the model needs (10,)" in str(err.value)
    assert "init_head='new' gives a fresh classifier" in str(err.value)
    config.model = "resnet34"
    with pytest.raises(ConfigError) as err:
        finetune.source_variables(config)
    assert "not a resnet34 state dict" in str(err.value) and "\n" not in str(err.value)


def test_a_source_with_non_finite_weights_is_refused_before_training(torchvision_resnet18,
                                                                     tmp_path):
    torch = pytest.importorskip("torch")
    state = torch.load(torchvision_resnet18, weights_only=True)
    state["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    config = cli.load_config_file(RECIPE)
    config.init_from = str(tmp_path / "nan.pth")
    fresh = models.create("resnet18", num_classes=10).init(
        jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    with pytest.raises(ConfigError) as err:
        finetune.initial_variables(config, fresh)
    assert str(err.value).startswith(f"config.init_from={str(tmp_path / 'nan.pth')!r}: holds "
                                     "non-finite values in ['params']['layer1_0']")
    assert "lower config.lr" not in str(err.value)
