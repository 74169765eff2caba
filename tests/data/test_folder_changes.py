"""A folder changed since its build: the build records what it read, and training,
``--mode eval`` and the experiments runner compare the folder with it at start, saying
in one line what changed (an error by default, a warning by choice); a folder that no
longer exists trains from its build with a note."""

import os
import shutil

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from runs import run_main

from experiments import run as experiments_run
from resnet_flax.config import default_config
from resnet_flax.data import folder_changes, folders

CONFIG = str(REPO / "configs" / "folder.py")


def write_digits(root, per_class=8):
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / str(c)).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 40, (12, 12)) + 80 * c
            Image.fromarray(pixels.astype(np.uint8)).save(root / str(c) / f"{i}.png")


@pytest.fixture
def built(tmp_path):
    root = tmp_path / "digits"
    write_digits(root)
    name = f"folder:{root}"
    folders.build(name, str(tmp_path / "tfds"), holdout=0.25, workers=1)
    return name, root, tmp_path / "tfds"


def config_of(name, data_dir, **values):
    config = default_config()
    config.dataset, config.data_dir = name, str(data_dir)
    for key, value in values.items():
        config[key] = value
    return config


def test_added_removed_and_modified_files_are_counted(built):
    name, root, data_dir = built
    assert folder_changes.check(config_of(name, data_dir)) == ""
    for i in range(6):  # Six images added to one class, one deleted from another.
        shutil.copy(root / "0" / "0.png", root / "0" / f"new_{i}.png")
    (root / "1" / "3.png").unlink()
    with pytest.raises(folder_changes.FolderChanged) as raised:
        folder_changes.check(config_of(name, data_dir))
    line = str(raised.value)
    assert "changed since its build (6 files added, 1 removed, 0 modified)" in line
    assert f"python -m resnet_flax.data.build {name} --data_dir {data_dir} --overwrite" in line
    assert "--config.folder_changed=warn" in line
    path = root / "2" / "5.png"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    warned = folder_changes.check(config_of(name, data_dir, folder_changed="warn"))
    assert warned.startswith(f"warning: {name} changed since its build (6 files added, 1 "
                             "removed, 1 modified); this run reads the build as it is")
    # Rebuilt, the folder is its build again.
    folders.build(name, str(data_dir), holdout=0.25, workers=1, overwrite=True)
    assert folder_changes.check(config_of(name, data_dir)) == ""


def test_a_folder_that_is_no_dataset_any_more_says_why(built):
    name, root, data_dir = built
    for i in (1, 2):
        shutil.rmtree(root / str(i))
    with pytest.raises(folder_changes.FolderChanged, match="one class subfolder"):
        folder_changes.check(config_of(name, data_dir))


@pytest.mark.slow
def test_training_eval_and_the_runner_say_it_in_one_line_and_a_gone_folder_trains(
        built, tmp_path):
    name, root, data_dir = built
    tiny = [f"--config.dataset={name}", f"--config.data_dir={data_dir}",
            "--config.model=resnet20", "--config.model_options.width_multiplier=0.25",
            "--config.batch_size=6", "--config.eval_batch_size=6", "--config.num_epochs=1",
            "--config.input=device", "--config.crop=none", "--config.progress_bar=False",
            "--config.normalization=dataset", "--config.random_flip=False"]
    trained = run_main(tmp_path / "run", *tiny, config=CONFIG)
    assert trained.returncode == 0, trained.stderr
    shutil.copy(root / "0" / "0.png", root / "0" / "extra.png")
    refused = run_main(tmp_path / "again", *tiny, config=CONFIG)
    assert refused.returncode == 2 and not (tmp_path / "again").exists()
    assert refused.stderr.strip().splitlines() == [
        f"error: {name} changed since its build (1 files added, 0 removed, 0 modified): "
        f"rebuild it with `python -m resnet_flax.data.build {name} --data_dir {data_dir} "
        "--overwrite`, or give --config.folder_changed=warn to use the build as it is"]
    evaluated = run_main(tmp_path / "run", "--mode=eval", config=None)
    assert evaluated.returncode == 2 and evaluated.stderr.count("\n") == 1
    assert "changed since its build (1 files added" in evaluated.stderr
    with pytest.raises(SystemExit):
        experiments_run.main(["shortcuts", "--dataset", name, "--data_dir", str(data_dir),
                              "--seeds", "1", "--workdir", str(tmp_path / "exp")])
    assert not (tmp_path / "exp" / "resnet20_A").exists()  # Stopped before any run.
    root.rename(tmp_path / "moved")  # Only the build is left, as on a cluster node.
    gone = run_main(tmp_path / "gone", *tiny, config=CONFIG)
    assert gone.returncode == 0, gone.stderr
    assert f"note: {root} no longer exists; {name} trains and evaluates from its build" in (
        gone.stderr)
