"""A raw store's training crops cut on the host and resized in the step: the pixels PIL's
resize gives (within the rounding of float32 weights), any channel count, and a run on
a raw store that trains on them."""

import math

import jax
import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

from resnet_flax.data import canvas, crops, sources, stream

SIZE = 48


def stored_image(rng, h, w, channels=3):
    """A smooth image with grain: neighbouring pixels differ, as in a photo."""
    coarse = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR), int)
    grain = rng.integers(-20, 21, smooth.shape)
    pixels = np.clip(smooth + grain, 0, 255).astype(np.uint8)
    return pixels[..., :1] if channels == 1 else pixels


def pil_horizontal_first(image, box, size):
    """PIL's two passes in the order it uses for wide images."""
    top, left, h, w = box
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    across = pil.resize((size, image.shape[0]), Image.BILINEAR, box=(left, 0, left + w,
                                                                     image.shape[0]))
    out = np.asarray(across.resize((size, size), Image.BILINEAR, box=(0, top, size, top + h)))
    return out.reshape(size, size, image.shape[-1])


@pytest.mark.parametrize("channels", [1, 3])
def test_boxes_resized_in_the_step_are_pils_crops_within_rounding(channels):
    rng = np.random.default_rng(0)
    side = canvas.side(64, SIZE, crops.INCEPTION_RATIO)
    canvases = np.zeros((24, side + 1, side, channels), np.uint8)
    expected, horizontal_first = [], []
    for i in range(len(canvases)):
        long = int(rng.integers(64, 86))
        h, w = (64, long) if i % 2 else (long, 64)
        image = stored_image(rng, h, w, channels)
        box = crops.inception_box(np.random.default_rng(i), h, w)
        canvas.place(canvases[i], image, box, SIZE)
        expected.append(crops.random_resized_crop(np.random.default_rng(i), image, SIZE))
        horizontal_first.append(pil_horizontal_first(image, box, SIZE))
    got = np.asarray(jax.jit(canvas.resized, static_argnums=1)(canvases, SIZE), int)
    assert got.shape == (24, SIZE, SIZE, channels)
    # PIL resizes some tall images vertical pass first: one level apart at most there.
    assert np.abs(got - np.stack(expected)).max() <= 2
    assert np.abs(got - np.stack(expected)).mean() < 0.2
    # In PIL's own order, float32 weights differ from PIL's doubles on a few pixels only.
    unequal = got != np.stack(horizontal_first)
    assert unequal.mean() < 0.02 and np.abs(got - np.stack(horizontal_first)).max() <= 2


def test_a_box_the_canvas_cannot_hold_is_one_clear_error():
    room = canvas.side(16, 16, crops.INCEPTION_RATIO)
    image = np.zeros((40, 40, 3), np.uint8)  # Larger than a 16-px store's images.
    with pytest.raises(ValueError, match=r"a 40x40 crop box of a 40x40 stored image does not "
                                         rf"fit the {room}-px canvas"):
        canvas.place(np.zeros((room + 1, room, 3), np.uint8), image, (0, 0, 40, 40), 16)


def test_the_canvas_holds_the_longest_box_torchvision_draws():
    rng = np.random.default_rng(1)
    room = canvas.side(30, 24, crops.INCEPTION_RATIO)
    for _ in range(300):
        h, w = (30, int(rng.integers(30, 90))) if rng.random() < 0.5 else (
            int(rng.integers(30, 90)), 30)
        box = crops.inception_box(rng, h, w)
        canvas.place(np.zeros((room + 1, room, 3), np.uint8), np.zeros((h, w, 3), np.uint8),
                     box, 24)
    assert room == math.ceil(30 * 4 / 3) + 2 + 2 * (math.ceil(42 / 24) + 1)


def test_a_raw_store_trains_on_crops_the_step_resizes(tmp_path):
    from test_folders import write_folder

    from resnet_flax.data import folders
    from resnet_flax.run import train_loop

    write_folder(tmp_path / "images", 4)
    name, data_dir = f"folder:{tmp_path / 'images'}", tmp_path / "d"
    folders.build(name, str(data_dir), store=folders.Store("raw", 40), workers=1)
    config = tiny_config(data_dir, dataset=name, input="stream", crop="inception",
                         crop_size=24, crop_resize="device", input_workers=0,
                         batch_size=4, num_epochs=1, normalization="imagenet")
    summary = train_loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert math.isfinite(summary["train_loss"]) and math.isfinite(summary["test_loss"])

    source = sources.open_source(config)
    room = canvas.side(40, 24, crops.INCEPTION_RATIO)
    assert source.train_image_shape == (room + 1, room, 3) and source.image_shape == (24, 24, 3)
    # The same (seed, epoch, position) draws, resized on the host by PIL.
    on_host = dict(crop=stream.Crop("inception", 24), seed=config.seed)
    item = (0, np.arange(4), source._examples[:4])
    host = stream._ReadTrain(source._train_source, **on_host)(item)["image"]
    boxes = stream._ReadTrain(source._train_source, source.crop, config.seed)(item)["image"]
    resized = np.asarray(canvas.resized(boxes, 24), int)
    assert np.abs(resized - host).max() <= 2 and np.abs(resized - host).mean() < 0.3


def test_crop_resize_names_where_and_nothing_else():
    from resnet_flax.config import ConfigError, check_values, default_config

    config = default_config()
    config.crop_resize = "gpu"
    with pytest.raises(ConfigError, match=r"crop_resize.*'gpu'.*\('auto', 'device', 'host'\)"):
        check_values(config)
