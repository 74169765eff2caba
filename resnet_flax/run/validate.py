"""``validate(config)``: every check of a config, composed from the parts that own them."""

from __future__ import annotations

from resnet_flax import config as schema
from resnet_flax.data import checks as data_checks
from resnet_flax.models import configured as model_config
from resnet_flax.train import checks as train_checks


def validate(config) -> None:
    """Raises ``config.ConfigError`` on a value no run could use, before any data is read:
    the schema's ranges first, then the names each part owns."""
    schema.check_values(config)
    train_checks.check(config)
    data_checks.check(config)
    model_config.check(config)
