"""The config fields the data owns: the dataset, the input path, its crops and the
channels and statistics images are given to the model with."""

from __future__ import annotations

from resnet_flax.config import ConfigError
from resnet_flax.data import datasets
from resnet_flax.suggest import closest

INPUTS = ("device", "stream")  # config.input: see data/sources.py.
CROPS = ("none", "inception")  # config.crop: the stream input's crops (data/crops.py).


def check(config) -> None:
    """Raises ``ConfigError`` for an unknown dataset, input or crop, or images the chosen
    input cannot hold or the model's input cannot be made from."""
    def fail(field, why):
        raise ConfigError(f"config.{field}={config[field]!r} {why}")

    for field, choices in (("input", INPUTS), ("crop", CROPS)):
        if config[field] not in choices:
            fail(field, f"is not one of {choices}{closest(str(config[field]), choices)}")
    if config.crop != "none" and config.input != "stream":
        fail("crop", "needs config.input='stream' (the device path holds images as stored)")
    spec = _spec(config)
    if spec and None in spec.image_shape and config.crop == "none":
        raise ConfigError(f"config.dataset={config.dataset!r} has images of varying size: "
                          "set config.input='stream' and config.crop='inception'")
    channels = spec.image_shape[-1] if spec else None
    if config.input_channels and channels not in (None, 1, config.input_channels):
        fail("input_channels", f"cannot be made from {config.dataset}'s {channels} channels")
    if config.normalization not in datasets.NORMALIZATIONS:
        fail("normalization", f"is not one of {datasets.NORMALIZATIONS}")
    if config.normalization == "imagenet" and (config.input_channels or channels) not in (
            None, 3):
        fail("normalization", "needs 3-channel input: set input_channels=3")
    if spec is None:
        raise ConfigError(f"config.dataset={config.dataset!r} is not one of "
                          f"{tuple(sorted(datasets.SPECS))} or {datasets.FOLDER_PREFIX}PATH"
                          f"{closest(config.dataset, datasets.SPECS)}")
    if config.repeated_augment < 0:
        fail("repeated_augment", "must be >= 0 (0 or 1: off; timm and torchvision use 3)")
    if config.auto_augment:
        _check_policy(config)


def _check_policy(config) -> None:
    if config.input != "stream":
        raise ConfigError(f"config.auto_augment={config.auto_augment!r} needs "
                          "config.input='stream' (a policy runs on the host, in its workers)")
    from resnet_flax.data import sources  # Its image size and mean, as training takes them.

    try:
        sources.augment_policy(config)
    except ValueError as e:
        raise ConfigError(f"config.auto_augment={config.auto_augment!r} "
                          f"(interpolation {config.auto_augment_interpolation!r}): {e}") from None


def _spec(config) -> datasets.DatasetSpec | None:
    """The spec of ``config.dataset`` (None if unknown); a folder must be built."""
    if not datasets.is_folder(config.dataset):
        return datasets.SPECS.get(config.dataset)
    try:
        return datasets.get(config.dataset, config.data_dir or None)
    except datasets.FolderNotBuilt as e:
        raise ConfigError(str(e)) from None
