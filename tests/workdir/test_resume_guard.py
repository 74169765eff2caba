"""Resuming a workdir with a config that trains differently is refused; extending is not."""

import json

import pytest

from resnet_flax.config import ConfigError, default_config
from resnet_flax.workdir import resume_guard


def _saved(tmp_path, **changes):
    config = default_config()
    config.update(changes)
    resume_guard.record(config, tmp_path, {}, step=0)
    return config


def test_a_change_to_the_training_is_refused_with_the_fields(tmp_path):
    _saved(tmp_path, lr=0.1, batch_size=128)
    config = default_config()
    config.update({"lr": 0.05, "batch_size": 64})
    config.model_options.dtype = "bfloat16"
    with pytest.raises(ConfigError) as err:
        resume_guard.check(config, tmp_path)
    message = str(err.value)
    assert "batch_size 128 -> 64, lr 0.1 -> 0.05, model_options.dtype None -> 'bfloat16'" in (
        message)
    assert "--config.allow_config_change=True" in message and "\n" not in message


def test_extending_a_run_is_allowed_and_recorded(tmp_path):
    _saved(tmp_path, num_epochs=10)
    config = default_config()
    config.num_epochs = 20
    config.data_dir = "/elsewhere"
    changed = resume_guard.check(config, tmp_path)
    assert changed == {"num_epochs": (10, 20), "data_dir": ("", "/elsewhere")}
    resume_guard.record(config, tmp_path, changed, step=500)
    entry = json.loads((tmp_path / resume_guard.CHANGES_FILE).read_text())
    assert entry["step"] == 500
    assert entry["changes"]["num_epochs"] == {"from": 10, "to": 20}
    assert json.loads((tmp_path / "config.json").read_text())["num_epochs"] == 20


def test_allow_config_change_lets_it_through(tmp_path):
    _saved(tmp_path, seed=0)
    config = default_config()
    config.seed, config.allow_config_change = 1, True
    assert resume_guard.check(config, tmp_path)["seed"] == (0, 1)


def test_a_field_the_saved_run_predates_counts_as_its_default(tmp_path):
    config = _saved(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["ema_decay"], saved["model_options"]["block_dropout"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert resume_guard.check(config, tmp_path) == {}
    config.ema_decay = 0.99
    with pytest.raises(ConfigError, match=r"ema_decay 0.0 -> 0.99"):
        resume_guard.check(config, tmp_path)


def test_a_fresh_workdir_has_nothing_to_compare(tmp_path):
    assert resume_guard.check(default_config(), tmp_path / "new") == {}
    assert resume_guard.compare(default_config(), tmp_path / "new") is None


def test_compare_splits_the_changes_check_allows_from_those_it_refuses(tmp_path):
    _saved(tmp_path, num_epochs=10, lr=0.1)
    config = default_config()
    config.num_epochs, config.lr = 20, 0.05
    found = resume_guard.compare(config, tmp_path)
    assert found.changed == {"lr": (0.1, 0.05), "num_epochs": (10, 20)}
    assert found.refused == {"lr": (0.1, 0.05)}
    config.lr = 0.1
    assert resume_guard.compare(config, tmp_path).refused == {}


def test_an_unreadable_saved_config_stops_the_run(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json is unreadable"):
        resume_guard.check(default_config(), tmp_path)


def test_load_keeps_the_optimizer_options_a_run_was_given(tmp_path):
    config = default_config()
    config.optimizer = "rmsprop"
    config.optimizer_options = {"decay": 0.95, "centered": True}
    resume_guard.record(config, tmp_path, {}, 0)
    back = resume_guard.load(tmp_path)
    assert dict(back.optimizer_options) == {"decay": 0.95, "centered": True}
    assert resume_guard.compare(back, tmp_path).changed == {}


def test_synchronised_statistics_resume_without_a_warning(tmp_path):
    """The warning is for per-device statistics only; a run without a device change
    gets none either (test_device_counts runs the warned resume end to end)."""
    config = default_config()
    config.batch_size = 8
    moved = {"devices": (2, 1)}
    config.sync_batch_stats = True
    assert resume_guard.ghost_statistics_warning(config, tmp_path, moved) is None
    config.sync_batch_stats = False
    assert resume_guard.ghost_statistics_warning(config, tmp_path, {}) is None
    assert "span 8 examples, not 4" in resume_guard.ghost_statistics_warning(
        config, tmp_path, moved)
