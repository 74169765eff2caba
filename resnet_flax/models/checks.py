"""The config fields the models own: ``model``, ``model_options`` and ``freeze``."""

from __future__ import annotations

from resnet_flax.config import ConfigError, freeze_parts, model_overrides
from resnet_flax.models import options, registry
from resnet_flax.suggest import closest


def check(config) -> None:
    """Raises ``ConfigError`` for an unknown model, option value or frozen part, or an
    option the model's parts refuse (e.g. groups on basic blocks)."""
    try:
        registry.spec(config.model)
    except ValueError as e:  # Its message has the closest names and where the rest are.
        raise ConfigError(f"config.model: {e}") from None
    for option, table in options.CHOICES.items():
        value, valid = config.model_options[option], tuple(table)
        if value is not None and value not in valid:
            raise ConfigError(f"config.model_options.{option}={value!r} is not one of "
                              f"{valid}{closest(str(value), valid)}")
    try:
        model = registry.create(config.model, **model_overrides(config))
    except ValueError as e:
        raise ConfigError(f"config.model_options: {e}") from None
    unknown = [p for p in freeze_parts(config) if p not in model.parts()]
    if unknown:
        raise ConfigError(f"config.freeze={config.freeze!r}: {unknown} are not parts of "
                          f"{config.model} {model.parts()}{closest(unknown[0], model.parts())}")
