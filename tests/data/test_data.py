"""Batches, augmentation, and TFDS datasets built offline from original archives."""

import gzip
import hashlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED_DATA
from runs import without_tensorflow

from resnet_flax.data import augment, datasets, pipeline, png, tfds_source


def test_train_batches_are_a_fresh_permutation_per_epoch_and_reproducible():
    a0 = pipeline.train_batches(seed=1, epoch=0, num_examples=100, batch_size=8)
    a1 = pipeline.train_batches(seed=1, epoch=1, num_examples=100, batch_size=8)
    assert a0.shape == (12, 8) and len(set(a0.ravel())) == 96
    assert not np.array_equal(a0, a1)
    np.testing.assert_array_equal(a0, pipeline.train_batches(1, 0, 100, 8))


def test_eval_batches_cover_each_example_once():
    idx, mask = pipeline.eval_batches(num_examples=10, batch_size=4)
    assert idx.shape == mask.shape == (3, 4)
    assert sorted(idx[mask == 1].tolist()) == list(range(10))
    assert mask[-1].tolist() == [1, 1, 0, 0]


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    images = jnp.arange(2 * 6 * 6 * 1, dtype=jnp.uint8).reshape(2, 6, 6, 1) + 1
    out = augment.random_crop(jax.random.key(0), images, padding=2)
    assert out.shape == images.shape
    padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)))
    for n in range(2):
        windows = [padded[n, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(np.array_equal(out[n], w) for w in windows)


def test_random_flip_mirrors_or_keeps_each_image():
    images = jnp.arange(8 * 3 * 3, dtype=jnp.uint8).reshape(8, 3, 3, 1)
    out = augment.random_flip(jax.random.key(1), images)
    flipped = [bool(jnp.array_equal(o, i[:, ::-1])) for o, i in zip(out, images)]
    kept = [bool(jnp.array_equal(o, i)) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_normalize_uses_per_channel_statistics():
    x = jnp.full((1, 1, 1, 3), 255, jnp.uint8)
    np.testing.assert_allclose(augment.normalize(x, (0.5, 0.0, 1.0), (0.5, 1.0, 2.0))[0, 0, 0],
                               [1.0, 1.0, 0.0])


@pytest.mark.parametrize("channels", [1, 3])
def test_builds_encode_png_with_pillow_losslessly_and_keep_tfds_checks(channels):
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.features import image_feature

    image = np.random.default_rng(0).integers(0, 256, (5, 7, channels), np.uint8)
    feature = tfds.features.Image(shape=(5, 7, channels))
    with png.pillow_encoding():
        assert image_feature._ImageEncoder._encode_image.__module__ == png.__name__
        encoded = feature.encode_example(image)
        with pytest.raises(ValueError, match="Shape"):  # TFDS's own check still runs.
            feature.encode_example(image[:4])
    assert encoded == png.encode(image) and encoded.startswith(b"\x89PNG")
    assert image_feature._ImageEncoder._encode_image.__module__ != png.__name__
    np.testing.assert_array_equal(feature.decode_example_np(encoded), image)


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(ValueError, match="cifar10.*fashion_mnist"):
        datasets.get("imagenet2013")


def test_offline_without_data_fails_fast_with_instructions(tmp_path):
    start = time.perf_counter()
    with pytest.raises(tfds_source.DatasetUnavailable) as err:
        tfds_source.load_split("mnist", "train", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 30  # TFDS itself retries for minutes.
    message = str(err.value)
    assert "python -m resnet_flax.data.build mnist --archives" in message
    assert "t10k-labels-idx1-ubyte.gz" in message and str(tmp_path) in message


def _idx_images(path):
    with gzip.open(path) as f:
        data = f.read()
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28, 1)


def _build(name: str, archives, data_dir) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "resnet_flax.data.build", name, "--archives",
         str(archives), "--data_dir", str(data_dir)],
        capture_output=True, text=True, timeout=900, env=without_tensorflow())
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Quiet: a start and an end line; no progress bars, TensorFlow or TFDS noise.
    assert proc.stderr == "", proc.stderr[-3000:]
    assert proc.stdout.count("\n") == 2 and proc.stdout.startswith(f"building {name} into ")
    assert "test: 10000" in proc.stdout and "train: 60000" in proc.stdout


def _assert_as_tfds_own_build(name, archives, data_dir, reference_dir) -> None:
    """The build without TensorFlow holds what TFDS's own builder (TensorFlow's writer)
    writes from ``archives``: every example, in order, and the metadata."""
    import tensorflow_datasets as tfds
    from test_tfless_build import examples, metadata

    reference = tfds.builder(name, data_dir=str(reference_dir))
    with png.pillow_encoding():  # As the build with TensorFlow encoded before.
        reference.download_and_prepare(
            download_dir=str(reference_dir / "downloads"), file_format="array_record",
            download_config=tfds.download.DownloadConfig(manual_dir=str(archives)))
    ours = tfds.builder(name, data_dir=str(data_dir)).data_path
    for split in ("train", "test"):
        assert examples(ours, split) == examples(reference.data_path, split)
    assert metadata(ours) == metadata(reference.data_path)


def _first_labels(images, labels, archives, count: int = 10) -> list[int]:
    """Labels stored with (``images``, ``labels``, the train split as TFDS reads it) for the
    first ``count`` images of the original train file."""
    label_of = {hashlib.sha1(im.tobytes()).digest(): lab for im, lab in zip(images, labels)}
    originals = _idx_images(archives / "train-images-idx3-ubyte.gz")[:count]
    return [int(label_of[hashlib.sha1(im.tobytes()).digest()]) for im in originals]


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "fashion_mnist").is_dir(),
                    reason="../shared/data/fashion_mnist is not here")
def test_offline_build_of_real_fashion_mnist(tmp_path):
    archives = SHARED_DATA / "fashion_mnist"
    _build("fashion_mnist", archives, tmp_path)

    images, labels = tfds_source.load_split("fashion_mnist", "train", str(tmp_path),
                                            allow_download=False)
    test_images, _ = tfds_source.load_split("fashion_mnist", "test", str(tmp_path),
                                            allow_download=False)
    assert images.shape == (60000, 28, 28, 1) and test_images.shape == (10000, 28, 28, 1)
    assert np.bincount(labels).tolist() == [6000] * 10
    # TFDS stores examples in its own order; find the original first ten images.
    assert _first_labels(images, labels, archives) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    _assert_as_tfds_own_build("fashion_mnist", archives, tmp_path, tmp_path / "tfds")

    # MNIST's files have the same names; its build in the same data_dir must not reuse
    # Fashion-MNIST's extracted archives (it did, with TFDS's shared downloads/).
    if (SHARED_DATA / "mnist").is_dir():
        _build("mnist", SHARED_DATA / "mnist", tmp_path)
        images, labels = tfds_source.load_split("mnist", "train", str(tmp_path),
                                                allow_download=False)
        assert np.bincount(labels)[1] == 6742  # MNIST's train split has 6,742 ones.
        assert _first_labels(images, labels, SHARED_DATA / "mnist") == [
            5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
