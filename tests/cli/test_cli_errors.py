"""A user's mistake in the command or the config: one ``error:`` line, nothing written."""


import pytest
from conftest import REPO

from resnet_flax import cli
from resnet_flax.config import ConfigError
from resnet_flax.run.validate import validate

CONFIG = "configs/fashion_mnist.py"


def _config(**changes):
    config = cli.load_config_file(str(REPO / CONFIG))
    for key, value in changes.items():
        target = config.model_options if key in config.model_options else config
        target[key] = value
    return config


@pytest.mark.parametrize("changes,expected", [
    ({"lr": float("nan")}, "config.lr=nan must be a finite number >= 0"),
    ({"lr": float("inf")}, "config.lr=inf must be a finite number >= 0"),
    ({"momentum": -0.9}, "config.momentum=-0.9 must be a finite number >= 0"),
    ({"batch_size": 0}, "config.batch_size=0 must be positive"),
    ({"optimizer": "sgdd"},
     "config.optimizer='sgdd' is not an optax optimizer; did you mean 'sgd'?"),
    ({"schedule": "cosine"}, "config.schedule='cosine' is not one of"),
    ({"label_smoothing": float("nan")}, "config.label_smoothing=nan must be in [0, 1)"),
    ({"dataset": "cifar11"}, "did you mean 'cifar10' or 'cifar100'?"),
    ({"model": "resnet21"}, "config.model: unknown model 'resnet21'; did you mean"),
    ({"dtype": "float64"}, "config.model_options.dtype='float64' is not one of"),
    ({"shortcut": "E"}, "config.model_options.shortcut='E' is not one of ('A', 'B', 'C', 'D')"),
    ({"bn_convention": "keras"}, "config.model_options.bn_convention='keras'"),
    ({"conv_init": "he"}, "config.model_options.conv_init='he' is not one of"),
    ({"lr_boundaries_epochs": (60, 30)}, "config.lr_boundaries_epochs=(60, 30) must be"),
    ({"cutout_size": -4}, "config.cutout_size=-4 must be >= 0 (0 disables Cutout)"),
    ({"mix_prob": 1.5}, "config.mix_prob=1.5 must be a probability in [0, 1]"),
    ({"mixup_alpha": float("inf")}, "config.mixup_alpha=inf must be a finite number >= 0"),
    ({"random_erasing_scale": (0.5, 0.1)}, "config.random_erasing_scale=(0.5, 0.1) must be"),
    ({"norm": "layer"}, "config.model_options.norm='layer' is not one of ('batch', 'group', "),
    ({"activation": "gelu"}, "config.model_options.activation='gelu' is not one of ('relu', "),
    ({"groups": 32, "base_width": 4}, "'fashion_mnist_resnet': groups=32 is not an option of "
                                      "BasicBlock (its options: "),
    ({"model": "resnet50", "groups": 0}, "groups=0 and base_width=64 must be >= 1"),
])
def test_validate_names_the_field_the_value_and_valid_ones(changes, expected):
    with pytest.raises(ConfigError) as err:
        validate(_config(**changes))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_every_recipe_and_model_family_passes():
    validate(_config(model="plain_resnet56", shortcut="A", dtype="bfloat16"))
    validate(_config(model="wrn_16_4", conv_init="flax_default", bn_convention="torch"))


@pytest.mark.parametrize("argv,expected", [
    (["--config.foo=1"], "--config.foo: no such config field (resnet_flax/config.py"),
    (["--config.optimzer=adam"], "--config.optimzer: no such config field; did you mean "
                                 "'optimizer' or 'optimizer_options'?"),
    (["--config.model_options.widht_multiplier=0.5"],
     "did you mean 'model_options.width_multiplier'"),
    (["--noconfig.nesterovv"], "--config.nesterovv: no such config field; did you mean "
                               "'nesterov'?"),
    # The metric's name, or a typo of it: the field it stands for.
    (["--config.learning_rate=0.1"], "; did you mean 'lr' (the field for 'learning_rate')?"),
    (["--config.learning_rat=0.1"], "; did you mean 'lr' (the field for 'learning_rate')?"),
    (["--config.epochs=3"], "; did you mean 'num_epochs' (the field for 'epochs')?"),
])
def test_unknown_config_fields_get_the_closest_names(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.check_config_args(["--config", CONFIG, *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1


def test_known_fields_and_a_config_given_with_equals_pass():
    cli.check_config_args([f"--config={CONFIG}", "--config.lr=0.1", "--noconfig.nesterov",
                           "--config.model_options.dtype=bfloat16", "--workdir", "x"])


def test_a_broken_config_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("def get_config():\n    return undefined_name\n")
    with pytest.raises(SystemExit):
        cli.check_config_args(["--config", str(bad)])
    err = capsys.readouterr().err
    assert err == f"error: --config {bad} does not load: NameError: name 'undefined_name' " \
                  "is not defined\n"


def test_an_override_without_a_config_file_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.check_config_args(["--workdir", "x", "--mode=eval", "--config.eval_batch_size=8"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: --config.eval_batch_size overrides a config file: give --config FILE too "
        "(--mode eval without --config uses the workdir's config.json as is)\n")
    cli.check_config_args(["--workdir", "x", "--mode=eval"])  # No override: main decides.
