"""TFDS datasets built from their original archives without TensorFlow.

For MNIST and Fashion-MNIST this stands in for TFDS's builder, which reads the archives
with ``tf.io.gfile`` and encodes images with ``tf.image.encode_png``: the archives are
checked against the checksums TFDS records for them, their examples generated as TFDS's
builder generates them (same keys, so the same order), encoded to PNG by Pillow (as the
build with TensorFlow does here, ``png``), and written by ``tfds_writer`` with the
builder's own metadata: the same examples in the same order as TFDS's build.
"""

from __future__ import annotations

import gzip
import hashlib
import pathlib
from collections.abc import Callable, Iterator

import numpy as np

from resnet_flax.data import png, tfds_writer

_HASH_CHUNK = 1 << 20


class ArchiveMismatch(ValueError):
    """An archive that is not the original file; ``path`` names it."""

    def __init__(self, path: pathlib.Path):
        super().__init__(str(path))
        self.path = path


def _idx_array(path: pathlib.Path, header_bytes: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read()[header_bytes:], np.uint8)


def _idx_split(archives: pathlib.Path, prefix: str) -> Iterator[tuple[int, dict]]:
    """TFDS's MNIST examples of one split: (index, {"image": PNG bytes, "label"})."""
    labels = _idx_array(archives / f"{prefix}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    pixels = _idx_array(archives / f"{prefix}-images-idx3-ubyte.gz", 16)
    pixels = pixels.reshape(len(labels), 28, 28, 1)
    for index, (image, label) in enumerate(zip(pixels, labels)):
        yield index, {"image": png.encode(image), "label": label}


def _idx_splits(archives: pathlib.Path) -> dict[str, Iterator]:
    return {"train": _idx_split(archives, "train"), "test": _idx_split(archives, "t10k")}


# Datasets built here, each with its splits' example generators.
SPLITS: dict[str, Callable[[pathlib.Path], dict[str, Iterator]]] = {
    "mnist": _idx_splits,
    "fashion_mnist": _idx_splits,
}


def sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_archives(builder, archives: pathlib.Path) -> int:
    """Their total size in bytes, once each of ``builder``'s archives in ``archives``
    has the size and checksum TFDS records for it; ``ArchiveMismatch`` otherwise."""
    total = 0
    for info in builder.url_infos.values():
        path = archives / info.filename
        if path.stat().st_size != info.size or sha256(path) != info.checksum:
            raise ArchiveMismatch(path)
        total += info.size
    return total


def build(builder, archives: pathlib.Path) -> None:
    """Builds ``builder``'s dataset (one of ``SPLITS``) from ``archives`` into its
    ``data_dir``, as TFDS's own build with ``file_format="array_record"`` does."""
    info = builder.info
    info.download_size = check_archives(builder, archives)
    tfds_writer.write_dataset(info, SPLITS[builder.name](archives),
                              pathlib.Path(builder.data_dir), shuffled=True)
