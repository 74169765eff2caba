"""The stream input (Grain over array_record): crops, images of mixed sizes, ImageNet's
builder under TFDS's mock data, and equality with the device input under jit and pmap.
Kill-and-resume of a stream run is in test_train.py (beside the run it must equal), two
processes each reading its half in test_distributed.py."""

import math

import jax
import numpy as np
import pytest
from conftest import JPEG_TEST, JPEG_TRAIN, tiny_config

from resnet_flax.config import ConfigError
from resnet_flax.data import crops, sources
from resnet_flax.run import evaluate, train_loop
from resnet_flax.run.validate import validate


def test_inception_boxes_cover_the_scale_and_ratio_ranges_inside_the_image():
    rng = np.random.default_rng(0)
    shares, ratios = [], []
    for _ in range(2000):
        top, left, h, w = crops.inception_box(rng, 400, 400)
        assert 0 <= top and top + h <= 400 and 0 <= left and left + w <= 400
        shares.append(h * w / (400 * 400))
        ratios.append(w / h)
    # Rounding to whole pixels moves the share and ratio a little past the bounds.
    assert 0.075 < min(shares) < 0.1 and max(shares) > 0.9
    assert 0.74 < min(ratios) < 0.78 and 1.30 < max(ratios) < 1.35
    # log-uniform ratio (a square image rejects tall and wide boxes alike): as many wider
    # than tall as taller than wide (the mean's standard error is 0.004).
    assert abs(np.mean(np.log(ratios))) < 0.015


def test_an_image_no_crop_fits_gets_the_centre_crop_with_its_ratio_clamped():
    rng = np.random.default_rng(0)
    # 10 x 1000: no try fits (a 3/4..4/3 box of >= 8% of the area is taller than 10).
    assert crops.inception_box(rng, 10, 1000) == (0, 493, 10, 13)  # 10 * 4/3 = 13 wide.
    assert crops.inception_box(rng, 1000, 10) == (493, 0, 13, 10)  # 10 / (3/4) = 13 tall.


def test_the_eval_crop_is_the_centre_of_the_image_resized_to_size_over_fraction():
    # 256 x 384 is already "resized" for 224 / 0.875: the crop is the centre, pixel exact.
    image = np.broadcast_to(np.arange(384, dtype=np.uint8)[None, :, None] % 251,
                            (256, 384, 3)).copy()
    out = crops.centre_crop(image, 224, 0.875)
    np.testing.assert_array_equal(out, image[16:240, 80:304])
    # Portrait and grey, resized: the shorter side becomes 256, the crop is 224 square.
    assert crops.centre_crop(np.zeros((500, 300, 1), np.uint8), 224).shape == (224, 224, 1)
    assert crops.random_resized_crop(rng=np.random.default_rng(1), image=image,
                                     size=32).shape == (32, 32, 3)


def test_images_of_varying_size_need_the_stream_and_its_crop():
    config = tiny_config("/nonexistent", dataset="imagenette", normalization="imagenet")
    with pytest.raises(ConfigError, match="varying size: set config.input='stream' and "
                                          "config.crop='inception'"):
        validate(config)
    config.crop = "inception"
    with pytest.raises(ConfigError, match="config.crop='inception' needs config.input="):
        validate(config)
    config.input = "stream"
    validate(config)
    config.input = "disk"
    with pytest.raises(ConfigError, match=r"config.input='disk' is not one of \('device', "
                                          r"'stream'\)"):
        validate(config)


def _params(trainer):
    return jax.tree.leaves(jax.device_get(trainer.state.params))


@pytest.mark.slow
def test_streamed_rows_under_pmap_train_what_the_device_input_trains(tiny_data_dir):
    """One epoch with crop and flip on the device, under pmap: each device given its rows
    of a streamed batch (and gathering the rest) takes exactly the steps of whole splits
    in device memory. (Under jit the two inputs are compared in test_train.py.)"""
    trained = {}
    for input_path in ("device", "stream"):
        config = tiny_config(tiny_data_dir, parallelism="pmap", input=input_path,
                             input_workers=0, num_epochs=1, crop_padding=2, random_flip=True)
        trainer = train_loop.Trainer(config, sources.open_source(config))
        trainer.train_steps(0, 0)
        trained[input_path] = (_params(trainer), trainer.evaluate())
    for a, b in zip(trained["device"][0], trained["stream"][0]):
        np.testing.assert_array_equal(a, b)
    assert trained["device"][1] == trained["stream"][1]


def test_a_test_subset_is_one_fixed_draw_that_both_inputs_evaluate_alike(tiny_data_dir):
    """``test_subset``: each epoch's evaluation reads a fixed draw of the test split, the
    same examples through either input (and every one of them once)."""
    evaluated = {}
    for input_path in ("device", "stream"):
        config = tiny_config(tiny_data_dir, input=input_path, input_workers=0, test_subset=9)
        trainer = train_loop.Trainer(config, sources.open_source(config))
        assert trainer.num_test == 9
        assert sum(int(mask.sum()) for *_, mask in trainer.source.eval_batches()) == 9
        evaluated[input_path] = trainer.evaluate()
        if input_path == "device":  # Not the split's first 9: a draw, as train_subset's.
            whole = tiny_config(tiny_data_dir, input_workers=0)
            labels = sources.load_splits(whole)[1].labels
            drawn = sources.load_splits(config)[1].labels
            assert list(drawn) != list(labels[:9])
    assert evaluated["device"] == evaluated["stream"]


@pytest.mark.slow
def test_jpeg_images_of_mixed_sizes_train_with_inception_crops_in_worker_processes(
        jpeg_data_dir, tmp_path):
    config = tiny_config(jpeg_data_dir, dataset="imagenette", input="stream", crop="inception",
                         crop_size=32, input_workers=2, normalization="imagenet",
                         batch_size=8, num_epochs=1, random_flip=True)
    summary = train_loop.train_and_evaluate(config, str(tmp_path))
    assert math.isfinite(summary["train_loss"]) and math.isfinite(summary["test_loss"])
    assert summary["images_per_sec"] > 0
    trainer = train_loop.Trainer(config, sources.open_source(config))
    assert trainer.num_train == JPEG_TRAIN and trainer.num_test == JPEG_TEST
    images, labels = next(iter(trainer.source.train_batches(0, 0)))
    assert images.shape == (8, 32, 32, 3) and images.dtype == np.uint8
    seen = sum(int(mask.sum()) for *_, mask in trainer.source.eval_batches())
    assert seen == JPEG_TEST  # Every validation image once; the last batch padded.
    # --mode eval reads them as the run did: the same accuracy, every image once.
    result = evaluate.evaluate_checkpoint(config, str(tmp_path))
    assert result["examples"] == JPEG_TEST and result["split"] == "validation"
    assert result["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert result["loss"] == pytest.approx(summary["test_loss"], rel=1e-5)


def test_imagenet2012_streams_from_its_tfds_builder_under_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    manual = tmp_path / "downloads" / "manual"  # The archives must be "there" to build.
    manual.mkdir(parents=True)
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        (manual / name).touch()
    config = tiny_config(tmp_path, dataset="imagenet2012", input="stream", crop="inception",
                         crop_size=32, input_workers=0, normalization="imagenet",
                         batch_size=8, eval_batch_size=8, num_epochs=1)
    with tfds.testing.mock_data(num_examples=16):
        trainer = train_loop.Trainer(config, sources.open_source(config))
        images, labels = next(iter(trainer.source.train_batches(0, 0)))
        assert images.shape == (8, 32, 32, 3)
        assert trainer.state.params["fc"]["kernel"].shape == (32, 1000)  # ImageNet's classes.
        trainer.train_steps(0, 0)
        metrics = trainer.evaluate()
    assert math.isfinite(metrics["test_loss"])


@pytest.mark.slow
def test_a_device_run_resumed_on_the_stream_trains_as_if_it_had_never_switched(
        tiny_data_dir, tmp_path):
    """`input` may change on resume: the stream, without an iterator state of its own,
    starts at the resumed step of the same order."""
    def run(workdir, input_path, epochs):
        config = tiny_config(tiny_data_dir, input=input_path, input_workers=0,
                             num_epochs=epochs)
        return train_loop.train_and_evaluate(config, str(workdir))

    run(tmp_path / "switched", "device", 1)
    switched = run(tmp_path / "switched", "stream", 2)
    straight = run(tmp_path / "straight", "device", 2)
    assert switched["train_loss"] == straight["train_loss"]
    assert switched["test_loss"] == straight["test_loss"]
