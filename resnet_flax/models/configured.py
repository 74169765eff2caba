"""The config fields the models own (``model``, ``model_options`` and ``freeze``): the one
way from a config to its model, and their checks."""

from __future__ import annotations

from resnet_flax.config import ConfigError, freeze_parts, model_overrides
from resnet_flax.models import registry
from resnet_flax.models.parts import BadOption
from resnet_flax.models.resnet import UnknownParts
from resnet_flax.suggest import closest


def from_config(config, num_classes: int | None = None):
    """``config.model`` with the ``model_options`` the config set and its frozen parts,
    for ``num_classes`` classes (default: the family's)."""
    classes = {} if num_classes is None else {"num_classes": num_classes}
    return registry.create(config.model, **classes, frozen=freeze_parts(config),
                           **model_overrides(config))


def check(config) -> None:
    """Raises ``ConfigError`` for an unknown model, option value or frozen part, or an
    option the model's parts refuse (e.g. groups on basic blocks)."""
    try:
        registry.spec(config.model)
    except ValueError as e:  # Its message has the closest names and where the rest are.
        raise ConfigError(f"config.model: {e}") from None
    try:
        from_config(config)
    except BadOption as e:
        raise ConfigError(f"config.model_options.{e.line}") from None
    except UnknownParts as e:
        raise ConfigError(f"config.freeze={config.freeze!r}: {e.unknown} are not parts of "
                          f"{config.model} {e.parts}{closest(e.unknown[0], e.parts)}") from None
    except ValueError as e:
        raise ConfigError(f"config.model_options: {e}") from None
    bn_batch = config.model_options.get("bn_batch")
    if bn_batch and config.batch_size % bn_batch:
        raise ConfigError(f"config.model_options.bn_batch={bn_batch}: a batch of "
                          f"{config.batch_size} does not split into slices of {bn_batch} "
                          "images; give a divisor of config.batch_size")
