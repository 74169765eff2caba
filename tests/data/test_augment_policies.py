"""Augmentation policies in the stream input and repeated augmentation: each training crop
augmented on the host, drawn from (seed, epoch, position) like its crop, so a batch is
the same whenever it is read; each image's copies on different devices; a run with both
resumed as if never stopped; and the config's one-line errors."""

import numpy as np
import pytest
from conftest import TINY_TRAIN, tiny_config

from resnet_flax.config import ConfigError
from resnet_flax.data import pipeline, sources, stream, tfds_source
from resnet_flax.run import train_loop
from resnet_flax.run.validate import validate

POLICIES = ("ta_wide", "ra", "rand-m9-mstd0.5-inc1")


def read(data_dir, policy, positions, epoch=0, seed=0):
    config = tiny_config(data_dir, input="stream", auto_augment=policy or "")
    source = tfds_source.data_source("fashion_mnist", "train", str(data_dir),
                                     allow_download=False)
    crop = stream.Crop(policy=sources.augment_policy(config))
    indices = np.arange(len(positions))
    return stream._ReadTrain(source, crop, seed)((epoch, np.asarray(positions), indices))


@pytest.mark.parametrize("policy", POLICIES)
def test_a_policy_augments_each_crop_the_same_way_on_every_read(tiny_data_dir, policy):
    plain = read(tiny_data_dir, None, range(16))["image"]
    first = read(tiny_data_dir, policy, range(16))
    assert first["image"].shape == plain.shape and first["image"].dtype == np.uint8
    np.testing.assert_array_equal(first["image"], read(tiny_data_dir, policy,
                                                       range(16))["image"])
    changed = [not np.array_equal(a, b) for a, b in zip(first["image"], plain)]
    assert sum(changed) >= 8  # Identity, or a no-op magnitude, leaves a few as they were.
    # The same images at other positions (or epochs): other draws.
    later = read(tiny_data_dir, policy, range(TINY_TRAIN, TINY_TRAIN + 16))["image"]
    assert sum(not np.array_equal(a, b) for a, b in zip(first["image"], later)) >= 8


@pytest.mark.parametrize("settings,message", [
    ({"auto_augment": "ta_wide"}, "config.auto_augment='ta_wide' needs config.input='stream'"),
    ({"auto_augment": "trivial", "input": "stream"},
     "config.auto_augment='trivial' (interpolation 'bilinear'): 'trivial' is not a policy: "
     "ta_wide, ra (torchvision's) or a timm string"),
    ({"auto_augment": "rand-m9-x3", "input": "stream"}, "config.auto_augment='rand-m9-x3'"),
    ({"auto_augment": "ra", "input": "stream", "auto_augment_interpolation": "bicubic"},
     "interpolation must be one of"),
])
def test_a_bad_policy_is_one_line(tiny_data_dir, settings, message):
    with pytest.raises(ConfigError, match=None) as raised:
        validate(tiny_config(tiny_data_dir, **settings))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_repeated_augmentation_deals_each_images_copies_to_different_devices():
    order = pipeline.train_batches(0, 0, 96, 24, repeats=3, devices=4)
    assert order.shape == (4, 24)  # The epoch as long as without.
    first = pipeline.train_batches(0, 0, 96, 24)
    # The first third of the same permutation, each image three times.
    assert set(order.ravel()) == set(first.ravel()[:32])
    assert set(np.bincount(order.ravel())[order.ravel()]) == {3}
    for step in order:  # A device's rows (6 of 24, in turn) hold distinct images.
        for rows in step.reshape(4, 6):
            assert len(set(rows)) == 6
    np.testing.assert_array_equal(order, pipeline.train_batches(0, 0, 96, 24, 3, 4))
    assert not np.array_equal(order, pipeline.train_batches(0, 1, 96, 24, 3, 4))


@pytest.mark.slow
def test_a_run_with_repeated_augmentation_and_a_policy_resumes_as_if_never_stopped(
        tiny_data_dir, tmp_path):
    def run(workdir, epochs):
        config = tiny_config(tiny_data_dir, input="stream", input_workers=0,
                             num_epochs=epochs, repeated_augment=3, auto_augment="ta_wide")
        return train_loop.train_and_evaluate(config, str(workdir))

    run(tmp_path / "resumed", 1)
    resumed = run(tmp_path / "resumed", 2)
    straight = run(tmp_path / "straight", 2)
    assert resumed["train_loss"] == straight["train_loss"]
    assert resumed["test_loss"] == straight["test_loss"]
    plain = train_loop.train_and_evaluate(
        tiny_config(tiny_data_dir, input="stream", input_workers=0, num_epochs=2),
        str(tmp_path / "plain"))
    assert plain["train_loss"] != straight["train_loss"]
