"""The recipe configs hold their sources' settings: torchvision's V2 (references/
classification, "ResNet50 V2") and timm's "ResNet strikes back" A1-A3 (table 1), each
field as the source gives it, and each a valid config."""

import importlib.util

import pytest
from conftest import REPO

from resnet_flax.run.validate import validate


def load(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def test_torchvision_v2():
    c = load("imagenet_tv2")
    assert (c.optimizer, c.momentum, c.lr, c.batch_size, c.num_epochs) == ("sgd", 0.9, 0.5,
                                                                          1024, 600)
    assert (c.schedule, c.warmup_epochs, c.warmup_start_factor) == ("warmup_cosine", 5, 0.01)
    assert (c.weight_decay, c.decay_bn_and_bias, c.label_smoothing) == (2e-5, False, 0.1)
    assert (c.mixup_alpha, c.cutmix_alpha, c.random_erasing) == (0.2, 1.0, 0.1)
    assert (c.auto_augment, c.auto_augment_interpolation) == ("ta_wide", "bilinear")
    assert (c.ema_every_steps, c.repeated_augment, c.crop_size) == (32, 4, 176)
    # torchvision's decay per update: 1 - (1 - 0.99998) x 1024 x 32 / 600.
    assert c.ema_decay == pytest.approx(1 - 2e-5 * 1024 * 32 / 600, rel=1e-12)
    assert (c.eval_crop_size, round(c.eval_crop_size / c.eval_crop_fraction)) == (224, 232)
    validate(c)


@pytest.mark.parametrize("name,epochs,lr,decay,mixup,policy,repeats,drop,crop", [
    ("imagenet_rsb_a1", 600, 5e-3, 0.01, 0.2, "rand-m7-mstd0.5-inc1", 3, 0.05, 224),
    ("imagenet_rsb_a2", 300, 5e-3, 0.02, 0.1, "rand-m7-mstd0.5-inc1", 3, 0.05, 224),
    ("imagenet_rsb_a3", 100, 8e-3, 0.02, 0.1, "rand-m6-mstd0.5-inc1", 0, 0.0, 160),
])
def test_resnet_strikes_back(name, epochs, lr, decay, mixup, policy, repeats, drop, crop):
    c = load(name)
    assert (c.optimizer, c.batch_size, c.num_epochs, c.lr, c.weight_decay) == (
        "lamb", 2048, epochs, lr, decay)
    assert (c.schedule, c.warmup_epochs, c.decay_bn_and_bias) == ("warmup_cosine", 5, False)
    assert (c.loss, c.bce_target_threshold, c.label_smoothing) == ("bce", 0.2, 0.0)
    assert (c.auto_augment, c.mixup_alpha, c.cutmix_alpha) == (policy, mixup, 1.0)
    assert (c.repeated_augment, c.model_options.stochastic_depth, c.crop_size) == (
        repeats, drop, crop)
    # Test 224 at crop 0.95: the image resized to floor(224 / 0.95) = 235 first.
    assert (c.eval_crop_size, round(c.eval_crop_size / c.eval_crop_fraction)) == (224, 235)
    validate(c)
