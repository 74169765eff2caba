"""The config fields training owns: optimizer, schedule, parallelism and the callbacks'
monitored metrics."""

from __future__ import annotations

from resnet_flax.config import ConfigError
from resnet_flax.suggest import closest
from resnet_flax.train import callbacks, optim, parallel


def check(config) -> None:
    """Raises ``ConfigError`` for a name optax has no optimizer for, an option that
    optimizer does not take, an unknown schedule, parallelism or metric, or early stopping
    that would restore an epoch ranked by another metric."""
    optim.optimizer_kwargs(config)  # The optimizer's name and options, read off optax.
    for field, choices in (("parallelism", parallel.PARALLELISMS),
                           ("best_metric", callbacks.BEST_METRICS),
                           ("schedule", optim.SCHEDULES)):
        if config[field] not in choices:
            raise ConfigError(f"config.{field}={config[field]!r} is not one of {choices}"
                              f"{closest(str(config[field]), choices)}")
    early = config.early_stopping
    for name in ("reduce_lr_on_plateau", "early_stopping"):
        monitor = config[name].monitor
        if monitor not in callbacks.MONITORS:
            raise ConfigError(f"config.{name}.monitor={monitor!r} is not one of "
                              f"{callbacks.MONITORS}{closest(monitor, callbacks.MONITORS)}")
    if early.enabled and early.restore_best and config.best_metric not in ("", early.monitor):
        raise ConfigError(
            f"config.early_stopping.restore_best={early.restore_best!r} restores the best "
            f"epoch by its monitor {early.monitor!r}, but config.best_metric="
            f"{config.best_metric!r} ranks epochs otherwise: make them equal, or "
            "restore_best=False")
