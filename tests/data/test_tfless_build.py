"""Dataset builds without TensorFlow: a folder and MNIST's archives, built in processes
where TensorFlow cannot be imported, hold what TFDS's own TensorFlow build writes (every
example decoded, in order, and the metadata), and a build with TensorFlow present is the
same bytes."""

import filecmp
import gzip
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from runs import without_tensorflow
from tensorflow_datasets.proto import tf_example_pb2

from resnet_flax.data import archive_builds, datasets, folders, png


def build(*args, tensorflow: bool):
    return subprocess.run([sys.executable, "-m", "resnet_flax.data.build", *map(str, args)],
                          capture_output=True, text=True, timeout=600,
                          env=None if tensorflow else without_tensorflow())


def examples(folder, split: str) -> list:
    """``split``'s examples as parsed protos, in stored order (shard by shard)."""
    from array_record.python import array_record_module

    out = []
    for shard in sorted(folder.glob(f"*-{split}.array_record-*")):
        reader = array_record_module.ArrayRecordReader(str(shard))
        out += [tf_example_pb2.Example.FromString(r) for r in reader.read_all()]
        reader.close()
    return out


def metadata(folder) -> dict:
    info = json.loads((folder / "dataset_info.json").read_text())
    return {"info": info, "features": json.loads((folder / "features.json").read_text()),
            "labels": (folder / "label.labels.txt").read_text()}


def write_mixed_folder(root):
    """Two classes of RGB JPEGs and PNGs, a grey PNG (converted), a BMP (re-encoded) and
    one unreadable file."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 255, (12 + i, 10, 3), np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.{'jpg' if i % 2 else 'png'}")
    Image.fromarray(rng.integers(0, 255, (9, 9), np.uint8)).save(root / "cat" / "grey.png")
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(root / "dog" / "b.bmp")
    (root / "dog" / "broken.jpg").write_bytes(b"no image")


def tfds_own_folder_build(root, data_dir):
    """The folder's examples as the build stores them, written by TFDS's own ad hoc
    builder (TensorFlow's writer) into ``data_dir``: the reference."""
    classes, splits, rule = folders.layout(root, 0.25, 0)
    scans = [folders.scan_file(f) for f in splits["train"]]
    scans = folders.held_out([s for s in scans if not s.problem], len(classes), 0.25, 0)
    store = folders.Store()

    def split_examples(split_scans):
        for i, scan in enumerate(split_scans):
            yield i, {"image": folders.stored((scan, 3, store)), "label": scan.label}

    tfds.dataset_builders.store_as_tfds_dataset(
        "folder", "1.0.0", folders._features(classes, 3, store),
        {split: split_examples(s) for split, s in scans.items()}, data_dir=str(data_dir),
        file_format="array_record", disable_shuffling=True)
    return data_dir / "folder" / "1.0.0"


@pytest.mark.slow
def test_a_folder_builds_without_tensorflow_as_tfds_own_build_and_as_with_it(tmp_path):
    root = tmp_path / "pets"
    write_mixed_folder(root)
    built = {}
    for tensorflow in (False, True):
        data_dir = tmp_path / f"tf_{tensorflow}"
        proc = build(f"folder:{root}", "--data_dir", data_dir, "--holdout", 0.25,
                     "--workers", 1, tensorflow=tensorflow)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "broken.jpg" in proc.stderr and "1 unreadable file skipped" in proc.stdout
        built[tensorflow] = datasets.folder_store(f"folder:{root}", str(data_dir))
    # With TensorFlow present or not: the same files, byte for byte, but the build time.
    tfds_dir = built[False] / "folder" / "1.0.0"
    same, differ, alone = filecmp.cmpfiles(tfds_dir, built[True] / "folder" / "1.0.0",
                                           [p.name for p in tfds_dir.iterdir()], shallow=False)
    assert differ == [] and alone == [] and len(same) == 5
    assert filecmp.cmp(built[False] / folders.FILES_RECORD, built[True] / folders.FILES_RECORD,
                       shallow=False)
    records = [json.loads((b / datasets.FOLDER_RECORD).read_text()) for b in built.values()]
    assert [{**r, "built": None} for r in records][0] == {**records[1], "built": None}

    reference = tfds_own_folder_build(root, tmp_path / "tfds")
    for split in ("train", "test"):
        ours, theirs = examples(tfds_dir, split), examples(reference, split)
        assert len(ours) == len(theirs) > 0 and ours == theirs
    ours, theirs = metadata(tfds_dir), metadata(reference)
    for info in (ours["info"], theirs["info"]):  # Who wrote it.
        info.pop("description"), info.pop("moduleName")
    assert ours == theirs
    assert tfds.builder_from_directory(str(tfds_dir)).info.splits["train"].num_examples == 10


def write_idx(path, array, magic: int):
    header = np.array([magic, *array.shape], ">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_archives_give_tfds_own_examples_with_tfds_own_keys(tmp_path):
    rng = np.random.default_rng(1)
    pixels, labels = rng.integers(0, 255, (7, 28, 28), np.uint8), rng.integers(0, 10, 7)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", pixels, 2051)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, 2049)
    for name in ("images-idx3", "labels-idx1"):  # TFDS's builder reads them extracted.
        (tmp_path / name).write_bytes(gzip.open(tmp_path / f"train-{name}-ubyte.gz").read())

    theirs = list(tfds.builder("mnist", data_dir=str(tmp_path))._generate_examples(
        7, str(tmp_path / "images-idx3"), str(tmp_path / "labels-idx1")))
    ours = list(archive_builds._idx_split(tmp_path, "train"))
    assert [k for k, _ in ours] == [k for k, _ in theirs] == list(range(7))
    for (_, mine), (_, tfds_example) in zip(ours, theirs):
        assert mine["label"] == tfds_example["label"]
        decoded = np.asarray(Image.open(io.BytesIO(mine["image"])))
        np.testing.assert_array_equal(decoded[..., None], tfds_example["image"])
        assert mine["image"] == png.encode(tfds_example["image"])


def test_a_tfds_builder_that_needs_tensorflow_says_so_in_one_line(tmp_path):
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"")
    proc = build("cifar10", "--archives", tmp_path, "--data_dir", tmp_path / "d",
                 tensorflow=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: building the TFDS dataset 'cifar10' needs TensorFlow, which is not installed: "
        "pip install 'resnet_flax[build]' (training on the built dataset does not need it)"]


def test_a_folder_build_of_many_files_shows_its_rate_and_time_left(tmp_path):
    pixels = np.zeros((4, 4, 3), np.uint8)
    for name in ("a", "b"):
        (tmp_path / "many" / name).mkdir(parents=True)
        for i in range(folders.PROGRESS_FROM // 2):
            Image.fromarray(pixels).save(tmp_path / "many" / name / f"{i}.png")
    proc = build(f"folder:{tmp_path / 'many'}", "--data_dir", tmp_path / "d", "--workers", 2,
                 tensorflow=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for phase in ("reading", "writing"):
        assert f"{phase}: 100%" in proc.stderr and " files/s]" in proc.stderr
