"""What the training loop needs to know about each supported TFDS dataset."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts about one TFDS image-classification dataset.

    ``mean``/``std`` are per-channel statistics of the training images on a
    0..1 scale, used to normalise inputs. ``archives`` are the original files a
    user can build the dataset from offline, and ``archive_hint`` where to get them.
    """

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    archives: tuple[str, ...]
    archive_hint: str
    train_split: str = "train"
    test_split: str = "test"


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
    )
}


def get(name: str) -> DatasetSpec:
    """The spec for dataset ``name``; unknown names fail listing the valid ones."""
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(SPECS))}")
    return SPECS[name]
