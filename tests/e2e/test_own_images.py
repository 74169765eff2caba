"""A folder of your own images, end to end as a user runs it: built by the command,
fine-tuned from torchvision weights on the stream input (Grain workers), evaluated,
images classified by class name; a folder of one size on the device input; and the
experiments runner on a folder."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from runs import read_metrics, run_main

FOLDER_RECIPE = str(REPO / "configs" / "folder.py")


def command(module, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)


def write_colours(root, per_class, rng):
    """Three classes, each a colour with noise, in JPEGs of varying size."""
    for c, name in enumerate(("blue", "green", "red")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = rng.integers(32, 80, 2)
            pixels = rng.integers(0, 50, (h, w, 3))
            pixels[..., 2 - c] += 150
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.jpg")


@pytest.mark.slow
def test_a_folder_fine_tunes_evaluates_and_predicts_by_class_name(tmp_path,
                                                                  torchvision_resnet18):
    rng = np.random.default_rng(0)
    write_colours(tmp_path / "photos" / "train", 8, rng)
    write_colours(tmp_path / "photos" / "val", 3, rng)
    (tmp_path / "photos" / "train" / "red" / "broken.jpg").write_bytes(b"\xff\xd8 cut")
    data = tmp_path / "tfds"
    built = command("resnet_flax.data.build", f"folder:{tmp_path / 'photos'}",
                    "--data_dir", data)
    assert built.returncode == 0, built.stderr
    assert built.stderr.count("skipped ") == 1 and "1 unreadable file skipped" in built.stdout
    workdir = tmp_path / "run"
    run = run_main(workdir, f"--config.dataset=folder:{tmp_path / 'photos'}",
                   f"--config.data_dir={data}", "--config.model=resnet18",
                   f"--config.init_from={torchvision_resnet18}", "--config.crop_size=32",
                   "--config.batch_size=8", "--config.eval_batch_size=4",
                   "--config.num_epochs=2", "--config.input_workers=1",
                   "--config.progress_bar=False", config=FOLDER_RECIPE)
    assert run.returncode == 0, run.stderr
    rows = read_metrics(workdir)
    assert len(rows) == 2 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    evaluated = run_main(workdir, "--mode=eval", config=None)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "(9 test images)" in evaluated.stdout and "per class: blue " in evaluated.stdout
    predicted = command("resnet_flax.predict", "--workdir", workdir, "--json",
                        tmp_path / "photos" / "val" / "green")
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert len(lines) == 3 and all('"class": "green"' in line or '"class": "red"' in line
                                   for line in lines)  # Names, not indices.
    # Its exported weights folder predicts the same files as the run does: the same
    # view (32 of the shorter side resized to 37) and probabilities within 1e-6.
    exported = command("resnet_flax.export", "--workdir", workdir, "--output",
                       tmp_path / "exported", "--formats", "weights")
    assert exported.returncode == 0, exported.stderr
    again = command("resnet_flax.predict", "--weights", tmp_path / "exported" / "weights",
                    "--json", "--top-k", "3", tmp_path / "photos" / "val" / "green")
    run_top = command("resnet_flax.predict", "--workdir", workdir, "--json", "--top-k", "3",
                      tmp_path / "photos" / "val" / "green")
    for ours, theirs in zip(map(json.loads, run_top.stdout.splitlines()),
                            map(json.loads, again.stdout.splitlines()), strict=True):
        assert [t["class"] for t in ours["top"]] == [t["class"] for t in theirs["top"]]
        np.testing.assert_allclose([t["probability"] for t in ours["top"]],
                                   [t["probability"] for t in theirs["top"]], atol=1e-6)


def write_grey_digits(root, per_class, rng):
    """Three classes of 16x16 grey PNGs, each a brightness."""
    for c in range(3):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (16, 16)) + 90 * c
            Image.fromarray(pixels.astype(np.uint8)).save(root / f"class_{c}" / f"{i}.png")


@pytest.fixture(scope="module")
def grey_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_grey_digits(root / "images", 12, np.random.default_rng(1))
    data = tmp_path_factory.mktemp("tfds")
    built = command("resnet_flax.data.build", f"folder:{root / 'images'}", "--data_dir", data,
                    "--holdout", "0.25")
    assert built.returncode == 0, built.stderr
    assert "(16x16x1)" in built.stdout
    return f"folder:{root / 'images'}", data


@pytest.mark.slow
def test_a_folder_of_one_size_trains_on_the_device_input(grey_folder, tmp_path):
    name, data = grey_folder
    run = run_main(tmp_path / "run", f"--config.dataset={name}", f"--config.data_dir={data}",
                   "--config.batch_size=8", "--config.eval_batch_size=8",
                   "--config.num_epochs=2", "--config.progress_bar=False",
                   "--config.model_options.width_multiplier=0.25")
    assert run.returncode == 0, run.stderr
    rows = read_metrics(tmp_path / "run")
    assert rows[-1]["epoch"] == 2 and np.isfinite(rows[-1]["test_loss"])


@pytest.mark.slow
def test_the_experiments_runner_trains_on_a_folder(grey_folder, tmp_path):
    from experiments import run

    name, data = grey_folder
    code = run.main(["shortcuts", "--dataset", name, "--data_dir", str(data), "--seeds", "1",
                     "--workdir", str(tmp_path), "--arms", "resnet20_A", "--set",
                     "num_epochs=1", "--set", "batch_size=8", "--set", "eval_batch_size=8",
                     "--set", "model_options.width_multiplier=0.25"])
    assert code == 0
    assert "resnet20_A" in (tmp_path / "results.csv").read_text()
