"""A folder of your own images, one subfolder per class, built once into a TFDS dataset.

    python -m resnet_flax.data.build folder:/data/flowers [--holdout 0.1] [--seed 0]
        [--store original|jpeg|raw --shorter 160]

Layouts (torchvision's ``ImageFolder``): ``ROOT/train/<class>/...`` with ``ROOT/val/`` or
``ROOT/test/`` beside it, or a single ``ROOT/<class>/...`` tree, split into train and test
by a seeded hold-out of each class, recorded. Classes are the training tree's subfolder
names in sorted order, so index ``i`` is torchvision's ``i``; a class's images are every
file with an image suffix under its folder, subfolders included, in sorted order.

The build writes a real TFDS dataset (``array_record``, examples in file order) under
``<data_dir>/folders/<name>-<digest>/`` with a record (``folder.json``) of the classes,
the image size (one size for all, or varying), the training images' mean and standard
deviation, the split, and every file skipped, and a list of every file it read with its
size and modification time (``files.json``: ``folder_changes`` compares the folder with
it before a run). Each file is decoded in full: one that is
not a readable image is skipped with one line naming it, and counted. Images are stored
as they are (JPEG or 8-bit PNG in the dataset's mode), others as PNG converted by
``images.convert``; ``--store jpeg``/``raw`` store every image with its shorter side
resized to ``--shorter`` (quality-90 JPEG, or raw uint8 pixels that need no decoding).
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import multiprocessing
import os
import pathlib
import shutil
import sys

import numpy as np
from PIL import Image

from resnet_flax.data import datasets, images

STORES = ("original", "jpeg", "raw")
# Beside the build's record: every file it read, with its size and modification time.
FILES_RECORD = "files.json"
_TEST_FOLDERS = ("val", "test")
# Kept as stored (no re-encoding) when already in the dataset's mode.
_KEPT_FORMATS = ("JPEG", "PNG")
# A build of this many files or more shows its progress.
PROGRESS_FROM = 1000


class FolderError(ValueError):
    """A folder that cannot be a dataset; the message is the one line for the user."""


@dataclasses.dataclass(frozen=True)
class Store:
    """How images are stored: as they are (``original``), or resized so the shorter side
    is ``shorter`` (never enlarged) as JPEG of ``quality`` or as raw pixels."""

    kind: str = "original"
    shorter: int = 0
    quality: int = 90


@dataclasses.dataclass(frozen=True)
class Scan:
    """What decoding one file in full found: its size, mode and format, and the sums of
    its pixels and their squares per channel (0..1 scale), or why it is unreadable."""

    path: str
    label: int
    size: tuple[int, int] = (0, 0)
    grey: bool = False
    mode: str = ""
    format: str = ""
    sums: tuple = ()
    problem: str = ""


def class_files(tree: pathlib.Path, classes: list[str]) -> list[tuple[str, int]]:
    """(file, class index) of every image under ``tree/<class>/``, in sorted order."""
    out = []
    for label, name in enumerate(classes):
        folder = tree / name
        if not folder.is_dir():
            continue
        for root, dirs, files in sorted(os.walk(folder, followlinks=True)):
            dirs.sort()
            out += [(os.path.join(root, f), label) for f in sorted(files)
                    if images.is_image_file(f)]
    return out


def class_names(tree: pathlib.Path) -> list[str]:
    """The subfolders of ``tree`` in sorted order (hidden ones left out)."""
    return sorted(e.name for e in os.scandir(tree) if e.is_dir() and not e.name.startswith("."))


def layout(root: pathlib.Path, holdout: float, seed: int) -> tuple[list, dict, dict]:
    """(classes, {split: [(file, label)]}, how the split was made); ``FolderError`` for a
    folder that is no dataset."""
    if not root.is_dir():
        raise FolderError(f"{root}: no such folder")
    tests = [root / t for t in _TEST_FOLDERS if (root / t).is_dir()]
    tree = root / "train" if (root / "train").is_dir() and tests else root
    classes = class_names(tree)
    if not classes:
        raise FolderError(f"{tree} has no class subfolders: put each class's images in a "
                          "folder of its own (train/<class>/... and val/<class>/..., or "
                          "<class>/... split by --holdout)")
    if len(classes) == 1:
        raise FolderError(f"{tree} has one class subfolder ({classes[0]}): a classifier needs "
                          "two or more")
    train = class_files(tree, classes)
    counts = np.bincount([label for _, label in train], minlength=len(classes))
    if not counts.all():
        raise FolderError(f"{tree / classes[int(np.argmin(counts))]} holds no image files "
                          f"({', '.join(images.SUFFIXES)})")
    if tests:
        unknown = sorted(set(class_names(tests[0])) - set(classes))
        if unknown:
            raise FolderError(f"{tests[0]} has classes the training folder {tree} lacks: "
                              f"{unknown[:5]}")
        rule = {"test_folder": tests[0].name}
        return classes, {"train": train, "test": class_files(tests[0], classes)}, rule
    if not 0 < holdout < 1:
        raise FolderError(f"--holdout {holdout}: must be in (0, 1) for a folder without "
                          "train/ and val/ inside")
    return classes, {"train": train}, {"holdout": holdout, "seed": seed}


def held_out(scans: list[Scan], num_classes: int, holdout: float, seed: int) -> dict:
    """{"train", "test"}: a seeded ``holdout`` share of each class's readable files as the
    test split (one at least, if the class has two), the rest for training."""
    rng = np.random.default_rng(seed)
    labels = np.array([s.label for s in scans])
    test = np.zeros(len(scans), bool)
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        take = min(max(int(round(holdout * len(members))), 1), len(members) - 1)
        test[rng.choice(members, max(take, 0), replace=False)] = True
    return {"train": [s for s, t in zip(scans, test) if not t],
            "test": [s for s, t in zip(scans, test) if t]}


def scan_file(item: tuple[str, int]) -> Scan:
    """Decodes one file in full (a truncated JPEG fails here, not in training)."""
    path, label = item
    try:
        with Image.open(path) as image:
            image.load()
            grey = images.is_grey(image)
            values = images.pixels(image, 1 if grey else 3).astype(np.float64) / 255
            sums = (values.sum((0, 1)).tolist(), np.square(values).sum((0, 1)).tolist(),
                    values.shape[0] * values.shape[1])
            return Scan(path, label, image.size, grey, image.mode, image.format or "", sums)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        cause = str(e).splitlines()[0] if str(e) else type(e).__name__
        return Scan(path, label, problem=cause)


def statistics(scans: list[Scan], channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the pixels of ``scans`` (0..1)."""
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for s in scans:
        total += s.sums[0] if len(s.sums[0]) == channels else s.sums[0] * channels
        squares += s.sums[1] if len(s.sums[1]) == channels else s.sums[1] * channels
        count += s.sums[2]
    mean = total / count
    return mean.tolist(), np.sqrt(np.maximum(squares / count - mean**2, 0)).tolist()


def resized(image: Image.Image, shorter: int) -> Image.Image:
    """``image`` with its shorter side ``shorter`` (aspect kept), if it is longer."""
    size = final_size(image.size, shorter)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def stored(task: tuple[Scan, int, Store]):
    """What the dataset stores for one scanned file: its own bytes where they decode to
    the dataset's mode already, else an encoded or raw conversion."""
    scan, channels, store = task
    mode = "L" if channels == 1 else "RGB"
    if store.kind == "original" and scan.format in _KEPT_FORMATS and scan.mode == mode:
        return pathlib.Path(scan.path).read_bytes()
    with Image.open(scan.path) as image:
        image = resized(images.convert(image, channels), store.shorter)
        if store.kind == "raw":
            return np.asarray(image, np.uint8).reshape(image.height, image.width, channels)
        buffer = io.BytesIO()
        if store.kind == "jpeg":
            image.save(buffer, format="JPEG", quality=store.quality)
        else:
            image.save(buffer, format="PNG")
        return buffer.getvalue()


def _features(classes: list[str], channels: int, store: Store):
    import tensorflow_datasets as tfds

    shape = (None, None, channels)
    image = (tfds.features.Tensor(shape=shape, dtype=np.uint8,
                                  encoding=tfds.features.Encoding.BYTES)
             if store.kind == "raw" else
             tfds.features.Image(shape=shape, encoding_format="jpeg" if store.kind == "jpeg"
                                 else "png"))
    return tfds.features.FeaturesDict({"image": image,
                                       "label": tfds.features.ClassLabel(names=classes)})


def _progress(total: int, what: str, shown: bool):
    """A progress bar on stderr (files/s and time left) for a build of ``total`` files."""
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=" files", file=sys.stderr, mininterval=1.0,
                disable=not shown or total < PROGRESS_FROM)


def _scan(pool, splits: dict, log, progress: bool) -> tuple[dict, list]:
    """({split: the readable files' scans}, [[file, why] of each unreadable one])."""
    scans, skipped = {}, []
    total = sum(len(files) for files in splits.values())
    with _progress(total, "reading", progress) as bar:
        for split, files in splits.items():
            scans[split] = []
            for scan in pool.imap(scan_file, files, 16):
                bar.update()
                if scan.problem:
                    log(f"skipped {scan.path}: not a readable image ({scan.problem})")
                    skipped.append([scan.path, scan.problem])
                else:
                    scans[split].append(scan)
    return scans, skipped


def _info(features, folder: pathlib.Path):
    """The TFDS metadata of a folder's dataset (``folder`` 1.0.0, in file order)."""
    from tensorflow_datasets.core import dataset_info, utils

    identity = dataset_info.DatasetIdentity(name="folder", version=utils.Version("1.0.0"),
                                            data_dir=str(folder), module_name=__name__)
    return dataset_info.DatasetInfo(builder=identity, features=features, disable_shuffling=True,
                                    description="A folder of images, one subfolder per class.")


def _write(pool, scans: dict, classes: list, channels: int, store: Store,
           folder: pathlib.Path, progress: bool) -> None:
    """The TFDS dataset of ``scans`` (per split), in file order, into ``folder``."""
    from resnet_flax.data import tfds_writer

    bar = _progress(sum(len(s) for s in scans.values()), "writing", progress)

    def examples(split_scans):
        tasks = ((s, channels, store) for s in split_scans)
        for i, (scan, payload) in enumerate(zip(split_scans, pool.imap(stored, tasks, 16))):
            bar.update()
            yield i, {"image": payload, "label": scan.label}

    with bar:
        # Raw pixels uncompressed: zstd halves their read rate and barely shrinks them.
        tfds_writer.write_dataset(
            _info(_features(classes, channels, store), folder),
            {split: examples(s) for split, s in scans.items()}, folder / "folder" / "1.0.0",
            shuffled=False, compressed=store.kind != "raw")


def listing(root: pathlib.Path, files) -> dict[str, list[int]]:
    """{path under ``root``: [size, modification time in ns]} of ``files``."""
    out = {}
    for path in files:
        found = os.stat(path)
        out[os.path.relpath(path, root)] = [found.st_size, found.st_mtime_ns]
    return out


def final_size(size: tuple[int, int], shorter: int) -> tuple[int, int]:
    """The (W, H) an image of ``size`` is stored at with ``Store.shorter``."""
    w, h = size
    if not shorter or min(w, h) <= shorter:
        return w, h
    return (shorter, round(h * shorter / w)) if w <= h else (round(w * shorter / h), shorter)


def record(name, classes, scans, skipped, rule, store) -> dict:
    """The build's record (``folder.json``): what training, evaluation and predict read."""
    good = [s for split in scans.values() for s in split]
    channels = 1 if all(s.grey for s in good) else 3
    sizes = {final_size(s.size, store.shorter) for s in good}
    (w, h), = sizes if len(sizes) == 1 else {(None, None)}
    mean, std = statistics(scans["train"], channels)
    return {"source": str(datasets.folder_path(name)), "classes": classes,
            "image_shape": [h, w, channels], "mean": mean, "std": std,
            "splits": {k: len(v) for k, v in scans.items()}, "split_rule": rule,
            "test_files": [s.path for s in scans["test"]] if "holdout" in rule else None,
            "store": dataclasses.asdict(store), "skipped": skipped,
            "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def build(name: str, data_dir: str | None = None, holdout: float = 0.1, seed: int = 0,
          store: Store = Store(), overwrite: bool = False, workers: int = 0, log=print,
          progress: bool = False) -> dict:
    """Builds folder dataset ``name`` (``folder:PATH``, or the folder's path) into
    ``data_dir``; returns its record. Each unreadable file is one ``log`` line;
    ``FolderError`` for a folder that cannot be a dataset or a build already there
    (unless ``overwrite``). ``progress``: bars on stderr while reading and writing
    ``PROGRESS_FROM`` files or more."""
    name = name if datasets.is_folder(str(name)) else f"{datasets.FOLDER_PREFIX}{name}"
    target = datasets.folder_store(name, data_dir)
    if (target / datasets.FOLDER_RECORD).exists() and not overwrite:
        raise FolderError(f"{name} is built already in {target}; add --overwrite to build "
                          "it again (after its images changed)")
    root = datasets.folder_path(name)
    classes, splits, rule = layout(root, holdout, seed)
    # Before any file is read: one changed during the build counts as changed later.
    read = listing(root, (path for files in splits.values() for path, _ in files))
    # One set of processes decodes every file, then encodes what the dataset stores.
    with multiprocessing.get_context("spawn").Pool(workers or os.cpu_count() or 1) as pool:
        scans, skipped = _scan(pool, splits, log, progress)
        if "holdout" in rule:
            scans = held_out(scans["train"], len(classes), holdout, seed)
        for split, kept in scans.items():
            if not kept:
                raise FolderError(f"{name}: no readable image in its {split} split")
        made = record(name, classes, scans, skipped, rule, store)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _write(pool, scans, classes, made["image_shape"][-1], store, partial, progress)
    (partial / datasets.FOLDER_RECORD).write_text(json.dumps(made, indent=1) + "\n")
    (partial / FILES_RECORD).write_text(json.dumps({"root": str(root), "files": read}) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # Whole or not at all: a killed build leaves no half dataset.
    return made
