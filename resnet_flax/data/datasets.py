"""What the training loop needs to know about each dataset: the supported TFDS ones by
name, and a folder of a user's own images as ``folder:/path/to/images`` once built
(``data/folders.py`` builds it; its facts are read here from the build's record)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts about one TFDS image-classification dataset.

    ``mean``/``std`` are per-channel statistics of the training images on a
    0..1 scale, used to normalise inputs. ``archives`` are the original files a
    user can build the dataset from offline, and ``archive_hint`` where to get them
    (``manual_only``: TFDS cannot download them). ``image_shape`` has None for a side
    that varies between images (those need ``config.crop``).
    """

    name: str
    image_shape: tuple[int | None, int | None, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    archives: tuple[str, ...]
    archive_hint: str
    train_split: str = "train"
    test_split: str = "test"
    manual_only: bool = False
    # A pre-resized raw store's shorter side (its images are pixels); 0 for other stores.
    raw_store_side: int = 0

    @property
    def fixed_size(self) -> bool:
        """Whether every image has ``image_shape`` (the device path needs it)."""
        return None not in self.image_shape


# The statistics torchvision's and timm's ImageNet weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("dataset", "imagenet")

_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

SPECS = {
    spec.name: spec
    for spec in (
        DatasetSpec("mnist", (28, 28, 1), 10, (0.1307,), (0.3081,), _IDX_FILES,
                    "the four original MNIST IDX .gz files"),
        DatasetSpec("fashion_mnist", (28, 28, 1), 10, (0.2860,), (0.3530,), _IDX_FILES,
                    "the four original Fashion-MNIST IDX .gz files (github.com/"
                    "zalandoresearch/fashion-mnist, data/fashion/)"),
        DatasetSpec("cifar10", (32, 32, 3), 10, (0.4914, 0.4822, 0.4465),
                    (0.2470, 0.2435, 0.2616), ("cifar-10-binary.tar.gz",),
                    "CIFAR-10's binary tarball from www.cs.toronto.edu/~kriz/cifar.html"),
        DatasetSpec("cifar100", (32, 32, 3), 100, (0.5071, 0.4865, 0.4409),
                    (0.2673, 0.2564, 0.2762), ("cifar-100-binary.tar.gz",),
                    "CIFAR-100's binary tarball from www.cs.toronto.edu/~kriz/cifar.html"),
        DatasetSpec("imagenet2012", (None, None, 3), 1000, IMAGENET_MEAN, IMAGENET_STD,
                    ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
                    "ImageNet's ILSVRC2012 training and validation tarballs (image-net.org, "
                    "after registering)", test_split="validation", manual_only=True),
        DatasetSpec("imagenette", (None, None, 3), 10, IMAGENET_MEAN, IMAGENET_STD,
                    ("imagenette2.tgz",), "fast.ai's full-size imagenette2.tgz "
                    "(github.com/fastai/imagenette)", test_split="validation"),
        DatasetSpec("imagenette/160px-v2", (None, None, 3), 10, IMAGENET_MEAN, IMAGENET_STD,
                    ("imagenette2-160.tgz",), "fast.ai's imagenette2-160.tgz "
                    "(github.com/fastai/imagenette)", test_split="validation"),
    )
}


FOLDER_PREFIX = "folder:"
# The build's record beside the TFDS dataset it wrote: classes, statistics, split, skips.
FOLDER_RECORD = "folder.json"


class FolderNotBuilt(ValueError):
    """A ``folder:`` dataset with no build in the data directory; the message says how."""


def is_folder(name: str) -> bool:
    """Whether ``name`` names a folder of images (``folder:PATH``), not a TFDS dataset."""
    return name.startswith(FOLDER_PREFIX)


def folder_path(name: str) -> pathlib.Path:
    """The image folder a ``folder:PATH`` name points to, absolute."""
    return pathlib.Path(name[len(FOLDER_PREFIX):]).expanduser().resolve()


def data_root(data_dir: str | None) -> pathlib.Path:
    """The TFDS data directory: ``data_dir``, else $TFDS_DATA_DIR, else TFDS's default."""
    default = os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    return pathlib.Path(data_dir or default).expanduser()


def folder_store(name: str, data_dir: str | None) -> pathlib.Path:
    """Where a folder's build lives: ``<data_dir>/folders/<folder name>-<path digest>``
    (two folders of one name in different places are two datasets)."""
    path = folder_path(name)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name or "root")
    return data_root(data_dir) / "folders" / f"{slug}-{hashlib.sha1(bytes(path)).hexdigest()[:8]}"


def folder_tfds_dir(name: str, data_dir: str | None) -> pathlib.Path:
    """The TFDS dataset (``<store>/folder/1.0.0``) a folder's build wrote."""
    return folder_store(name, data_dir) / "folder" / "1.0.0"


def folder_build_command(name: str, data_dir: str | None) -> str:
    dd = f" --data_dir {data_dir}" if data_dir else ""
    return f"python -m resnet_flax.data.build {FOLDER_PREFIX}{folder_path(name)}{dd}"


def folder_record(name: str, data_dir: str | None) -> dict:
    """The build record of folder dataset ``name``; ``FolderNotBuilt`` if there is none."""
    record = folder_store(name, data_dir) / FOLDER_RECORD
    if not record.is_file():
        where = "" if folder_path(name).is_dir() else " (and that folder does not exist)"
        raise FolderNotBuilt(f"{name} has not been built into {data_root(data_dir)}{where}: "
                             f"build it once with `{folder_build_command(name, data_dir)}`")
    return json.loads(record.read_text())


def _folder_spec(name: str, data_dir: str | None) -> DatasetSpec:
    record = folder_record(name, data_dir)
    store = record.get("store", {"kind": "original"})
    return DatasetSpec(name, tuple(record["image_shape"]), len(record["classes"]),
                       tuple(record["mean"]), tuple(record["std"]), (),
                       f"the image folder {record['source']}",
                       raw_store_side=store.get("shorter", 0) if store["kind"] == "raw" else 0)


def get(name: str, data_dir: str | None = None) -> DatasetSpec:
    """The spec for dataset ``name`` (a folder's from its build in ``data_dir``); unknown
    names fail listing the valid ones."""
    if is_folder(name):
        return _folder_spec(name, data_dir)
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(SPECS))}"
                         f" or {FOLDER_PREFIX}PATH")
    return SPECS[name]
