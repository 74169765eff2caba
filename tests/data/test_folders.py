"""A folder of your own images as a dataset: the build (torchvision's class order, bad
files skipped and counted, a seeded hold-out, pre-resized stores), the one rule for image
modes shared by the build and predict, the problems that are one line, and the crops
that decode as they need."""

import json
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from resnet_flax.cli import build_dataset, predict
from resnet_flax.config import ConfigError
from resnet_flax.data import crops, datasets, folders, images, tfds_source
from resnet_flax.run.validate import validate

CLASSES = ("tabby", "Zebra", "apple", "dog")  # Sorted: 'Zebra' < 'apple' < 'dog' < 'tabby'.


def smooth_image(rng, h, w, level):
    """An RGB image of one class's brightness with smooth texture (JPEG-friendly)."""
    coarse = rng.integers(0, 60, (h // 4 + 1, w // 4 + 1, 3)) + level
    return np.kron(coarse, np.ones((4, 4, 1)))[:h, :w].clip(0, 255).astype(np.uint8)


def write_folder(root: pathlib.Path, per_class: int, seed: int = 0, odd_modes: bool = False):
    """``root/<class>/`` of JPEGs of varying size; with ``odd_modes`` one each of 16-bit
    grey, CMYK, palette and transparent images, and two unreadable files."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        folder = root / name / "nested"  # ImageFolder walks a class's subfolders too.
        folder.mkdir(parents=True)
        for i in range(per_class):
            h, w = rng.integers(24, 64, 2)
            Image.fromarray(smooth_image(rng, h, w, 50 * c)).save(folder / f"{i:02}.jpg",
                                                                  quality=90)
        (root / name / "notes.txt").write_text("not an image suffix: ignored")
    if odd_modes:
        rgb = smooth_image(rng, 30, 40, 20)
        Image.fromarray(np.full((30, 40), 40000, np.uint16)).save(root / "dog" / "wide.png")
        Image.fromarray(rgb).convert("CMYK").save(root / "dog" / "cmyk.jpg")
        Image.fromarray(rgb).save(root / "dog" / "rgb.png")
        Image.fromarray(rgb).convert("P").save(root / "dog" / "palette.png")
        rgba = np.dstack([rgb, np.full((30, 40), 128, np.uint8)])
        Image.fromarray(rgba, "RGBA").save(root / "dog" / "half_transparent.png")
        (root / "apple" / "broken.jpg").write_bytes(b"not an image at all")
        whole = (root / "Zebra" / "nested" / "00.jpg").read_bytes()
        (root / "Zebra" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])


def torchvision_samples(root: pathlib.Path):
    """A port of torchvision's ``find_classes`` + ``make_dataset`` (ImageFolder)."""
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for target in sorted(index):
        for base, _, names in sorted(os.walk(root / target, followlinks=True)):
            for name in sorted(names):
                if name.lower().endswith(images.SUFFIXES):
                    samples.append((os.path.join(base, name), index[target]))
    return classes, samples


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A train/ + val/ folder with odd modes and bad files, built through the command."""
    root = tmp_path_factory.mktemp("pets")
    write_folder(root / "train", 6, odd_modes=True)
    write_folder(root / "val", 2, seed=1)
    data_dir = tmp_path_factory.mktemp("tfds")
    name = f"folder:{root}"
    assert build_dataset.main([name, "--data_dir", str(data_dir), "--workers", "2"]) == 0
    return name, root, data_dir


def test_classes_and_examples_follow_torchvisions_imagefolder_order(built):
    name, root, data_dir = built
    record = datasets.folder_record(name, str(data_dir))
    classes, samples = torchvision_samples(root / "train")
    assert record["classes"] == classes == sorted(CLASSES)
    unreadable = {str(root / "train" / "apple" / "broken.jpg"),
                  str(root / "train" / "Zebra" / "truncated.jpg")}
    readable = [(p, y) for p, y in samples if p not in unreadable]
    source = tfds_source.data_source(name, "train", str(data_dir), allow_download=False)
    assert [int(source[i]["label"]) for i in range(len(source))] == [y for _, y in readable]
    assert tfds_source.class_names(name, str(data_dir)) == classes
    assert record["splits"] == {"train": len(readable), "test": 2 * len(CLASSES)}
    assert sorted(p for p, _ in record["skipped"]) == sorted(unreadable)
    spec = datasets.get(name, str(data_dir))
    assert spec.image_shape == (None, None, 3) and spec.num_classes == 4


def test_each_unreadable_file_is_one_line_and_counted(tmp_path, capfd):
    write_folder(tmp_path / "images", 2, odd_modes=True)
    name = f"folder:{tmp_path / 'images'}"
    assert build_dataset.main([name, "--data_dir", str(tmp_path / "d"), "--workers", "1"]) == 0
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("skipped ") for line in lines)
    assert any("broken.jpg: not a readable image (cannot identify" in line for line in lines)
    assert any("truncated.jpg: not a readable image (image file is truncated" in line
               for line in lines)
    assert "4 classes" in out and "2 unreadable files skipped" in out


def test_every_mode_is_read_at_its_real_intensity_by_one_rule_for_build_and_predict(built):
    name, root, data_dir = built
    source = tfds_source.data_source(name, "train", str(data_dir), allow_download=False)
    _, samples = torchvision_samples(root / "train")
    skipped = {p for p, _ in datasets.folder_record(name, str(data_dir))["skipped"]}
    paths = [p for p, _ in samples if p not in skipped]
    stored = {p: images.decode(source[i]["image"], 3) for i, p in enumerate(paths)}
    wide = stored[str(root / "train" / "dog" / "wide.png")]
    assert (wide == round(40000 / 257)).all()  # Not clipped to 255.
    half = stored[str(root / "train" / "dog" / "half_transparent.png")]
    rgb = stored[str(root / "train" / "dog" / "rgb.png")].astype(int)
    assert np.abs(half.astype(int) - rgb * 128 / 255).max() <= 1  # Half on black.
    with Image.open(root / "train" / "dog" / "palette.png") as palette:
        np.testing.assert_array_equal(stored[palette.filename], palette.convert("RGB"))
    for path, pixels in stored.items():  # predict reads each file to the same pixels.
        read = predict.read_image(pathlib.Path(path), (None, None, 3),
                                  view=lambda image: np.asarray(image))
        np.testing.assert_array_equal(read, pixels, err_msg=path)


def test_a_grey_folder_of_one_size_is_a_one_channel_dataset_for_the_device_input(tmp_path):
    rng = np.random.default_rng(0)
    for c in range(3):
        (tmp_path / "digits" / str(c)).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 40, (20, 20)) + 80 * c
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "digits" / str(c) /
                                                          f"{i}.png")
    name = f"folder:{tmp_path / 'digits'}"
    folders.build(name, str(tmp_path / "d"), holdout=0.25, workers=1)
    spec = datasets.get(name, str(tmp_path / "d"))
    assert spec.image_shape == (20, 20, 1)
    train, labels = tfds_source.load_split(name, "train", str(tmp_path / "d"))
    assert train.shape == (18, 20, 20, 1) and sorted(set(labels.tolist())) == [0, 1, 2]
    assert spec.mean[0] == pytest.approx(train.mean() / 255, rel=1e-6)
    assert spec.std[0] == pytest.approx(train.std() / 255, rel=1e-6)


def test_the_hold_out_is_seeded_recorded_and_takes_from_every_class(tmp_path):
    write_folder(tmp_path / "images", 8)
    name = f"folder:{tmp_path / 'images'}"
    first = folders.build(name, str(tmp_path / "a"), holdout=0.25, seed=0, workers=1)
    again = folders.build(name, str(tmp_path / "b"), holdout=0.25, seed=0, workers=1)
    other = folders.build(name, str(tmp_path / "c"), holdout=0.25, seed=1, workers=1)
    assert first["test_files"] == again["test_files"] != other["test_files"]
    assert first["split_rule"] == {"holdout": 0.25, "seed": 0}
    assert first["splits"] == {"train": 24, "test": 8}
    assert {pathlib.Path(p).parts[-3] for p in first["test_files"]} == set(CLASSES)


@pytest.mark.parametrize("kind", ["jpeg", "raw"])
def test_a_pre_resized_store_keeps_the_shorter_side_and_decodes_to_its_pixels(tmp_path, kind):
    write_folder(tmp_path / "images", 2)
    name = f"folder:{tmp_path / 'images'}"
    folders.build(name, str(tmp_path / "d"), store=folders.Store(kind, 20), workers=1)
    source = tfds_source.data_source(name, "train", str(tmp_path / "d"))
    for i in range(len(source)):
        pixels = images.decode(source[i]["image"], 3)
        assert min(pixels.shape[:2]) == 20 and pixels.dtype == np.uint8
    assert isinstance(source[0]["image"], np.ndarray if kind == "raw" else bytes)
    from array_record.python import array_record_module

    files = datasets.folder_tfds_dir(name, str(tmp_path / "d")).glob("*train.array_record*")
    options = array_record_module.ArrayRecordReader(str(next(files))).writer_options_string()
    assert ("uncompressed" in options) == (kind == "raw")  # Raw pixels read at twice the rate.


def _fail_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_dataset.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_folders_that_are_no_dataset_are_one_line_each(tmp_path, capsys, built):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.png")
    (tmp_path / "one" / "cats").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "cats" / "a.png")
    for c in ("cats", "dogs"):
        (tmp_path / "empty" / c).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "empty" / "cats" / "a.png")
    cases = {"nope": "nope: no such folder", "flat": "has no class subfolders",
             "one": "has one class subfolder (cats): a classifier needs two or more",
             "empty": "empty/dogs holds no image files (.jpg"}
    for folder, expected in cases.items():
        line = _fail_line(capsys, [f"folder:{tmp_path / folder}", "--data_dir", str(tmp_path)])
        assert expected in line, line
    name, _, data_dir = built
    assert "is built already in" in _fail_line(capsys, [name, "--data_dir", str(data_dir)])
    assert "--store jpeg or raw needs --shorter N > 0" in " ".join(_fail_line(
        capsys, [name, "--store", "jpeg"]).split())


def test_training_on_a_folder_not_yet_built_says_how_to_build_it(tmp_path):
    from conftest import tiny_config

    config = tiny_config(tmp_path, dataset=f"folder:{tmp_path}")
    with pytest.raises(ConfigError, match=r"has not been built into .*: build it once with "
                                          r"`python -m resnet_flax.data.build folder:"):
        validate(config)


def _jpeg_bytes(h, w, quality=90) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(smooth_image(np.random.default_rng(0), h, w, 40)).save(
        buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_training_crops_draw_torchvisions_box_and_decode_reduced_only_where_it_fits():
    data = _jpeg_bytes(480, 640)
    full = images.decode(data, 3)
    for seed in range(20):
        exact = crops.train_view(np.random.default_rng(seed), data, 3, 64, reduce=False)
        np.testing.assert_array_equal(  # The whole-image decode path, pixel for pixel.
            exact, crops.random_resized_crop(np.random.default_rng(seed), full, 64))
        reduced = crops.train_view(np.random.default_rng(seed), data, 3, 64)
        diff = np.abs(reduced.astype(int) - exact.astype(int))
        assert diff.mean() < 4, seed  # DCT scaling: a little softer, the same view.


def test_the_record_says_what_was_built(built):
    name, root, data_dir = built
    record = json.loads((datasets.folder_store(name, str(data_dir)) / "folder.json")
                        .read_text())
    assert record["source"] == str(root) and record["split_rule"] == {"test_folder": "val"}
    assert record["store"] == {"kind": "original", "shorter": 0, "quality": 90}


def test_an_eval_batch_does_not_decode_its_padding_rows():
    from resnet_flax.data import stream

    class Source:  # Two real images, then padding rows whose bytes are not an image.
        dataset_info = type("Info", (), {"features": {"image": type(
            "Image", (), {"shape": (None, None, 3)})()}})()

        def __getitem__(self, i):
            return {"image": _jpeg_bytes(40, 50) if i < 2 else b"padding", "label": i}

    read = stream._ReadEval(Source(), stream.Crop("inception", 32))
    batch = read((np.array([0, 1, 2, 3]), np.array([1.0, 1.0, 0.0, 0.0])))
    assert batch["image"].shape == (4, 32, 32, 3) and not batch["image"][2:].any()
    np.testing.assert_array_equal(batch["image"][0], crops.eval_view(_jpeg_bytes(40, 50), 3, 32))


def test_a_damaged_folder_build_names_the_command_that_builds_it_again(tmp_path):
    for c in ("a", "b"):
        (tmp_path / "images" / c).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (12, 12), 40 * i).save(tmp_path / "images" / c / f"{i}.png")
    name, data_dir = f"folder:{tmp_path / 'images'}", str(tmp_path / "d")
    folders.build(name, data_dir, holdout=0.2, workers=1)
    record = next(datasets.folder_tfds_dir(name, data_dir).glob("*-train.array_record*"))
    record.write_bytes(record.read_bytes()[: record.stat().st_size // 2])  # Torn.
    with pytest.raises(tfds_source.DatasetUnavailable, match=(
            r"the train split cannot be read .*build it again: python -m "
            rf"resnet_flax.data.build folder:{tmp_path / 'images'} --data_dir {data_dir} "
            "--overwrite")):
        tfds_source.load_split(name, "train", data_dir)
