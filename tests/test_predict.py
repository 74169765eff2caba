"""``python -m resnet_flax.predict``: image files classified by a trained run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, TINY_TEST
from PIL import Image
from test_train import read_metrics

from resnet_flax import predict
from resnet_flax.data import tfds_source


def test_an_image_is_converted_and_resized_as_the_dataset_expects(tmp_path):
    rgba = np.zeros((40, 20, 4), np.uint8)
    rgba[..., 0] = 200  # Red where opaque...
    rgba[:, :10, 3] = 255  # ...on the left half; the right half is transparent.
    Image.fromarray(rgba).save(tmp_path / "a.png")
    gray = predict.read_image(tmp_path / "a.png", (28, 28, 1))
    assert gray.shape == (28, 28, 1) and gray.dtype == np.uint8
    assert gray[14, 2, 0] == round(0.299 * 200) and gray[14, 25, 0] == 0  # ITU-R 601-2 luma.
    rgb = predict.read_image(tmp_path / "a.png", (32, 32, 3))
    assert rgb.shape == (32, 32, 3) and tuple(rgb[16, 2]) == (200, 0, 0)
    same = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    Image.fromarray(same).save(tmp_path / "b.png")
    np.testing.assert_array_equal(predict.read_image(tmp_path / "b.png", (28, 28, 1))[..., 0],
                                  same)  # The dataset's size: not resampled.
    (tmp_path / "c.png").write_bytes(b"not an image")
    with pytest.raises(OSError):
        predict.read_image(tmp_path / "c.png", (28, 28, 1))


def _predict(*args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "resnet_flax.predict", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def assert_predictions_score_as_the_runs_evaluation(workdir, tiny_data_dir, tmp_path):
    """Predicts the tiny test split, written as PNG files (plus a photo and a broken file),
    from ``workdir``'s latest checkpoint: the scores equal the run's last evaluation.
    Called by test_evaluate.py on its trained run (EMA and flip TTA on)."""
    images, labels = tfds_source.load_split("fashion_mnist", "test", str(tiny_data_dir),
                                            allow_download=False)
    folder = tmp_path / "test_images"
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(folder / f"{i:02d}.png")
    Image.fromarray(np.full((90, 60, 3), 128, np.uint8)).save(tmp_path / "photo.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG truncated")

    proc = _predict("--workdir", workdir, "--json", "--top-k", "2", folder,
                    tmp_path / "broken.png", tmp_path / "photo.jpg")
    assert proc.returncode == 1  # One file could not be read; the others were classified.
    assert proc.stderr.splitlines() == [
        f"error: {tmp_path / 'broken.png'}: not a readable image (UnidentifiedImageError: "
        f"cannot identify image file '{tmp_path / 'broken.png'}')"]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(folder / f"{i:02d}.png") for i in
                                         range(TINY_TEST)] + [str(tmp_path / "photo.jpg")]
    for row in rows:
        first, second = row["top"]
        assert 1 >= first["probability"] >= second["probability"] >= 0
    names = tfds_source.class_names("fashion_mnist", str(tiny_data_dir))
    assert all(r["top"][0]["class"] == names[r["top"][0]["index"]] for r in rows)
    predicted = np.array([r["top"][0]["index"] for r in rows[:TINY_TEST]])
    # Lossless PNGs at the dataset's size: exactly the run's last evaluation.
    assert np.mean(predicted == labels) == pytest.approx(
        read_metrics(workdir)[-1]["test_accuracy"], abs=1e-6)
