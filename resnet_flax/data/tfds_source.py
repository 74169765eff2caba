"""TFDS datasets as numpy arrays, built offline from a user's original archives.

Reading a prepared ``array_record`` dataset goes through ``tfds.data_source``
and needs no TensorFlow. MNIST and Fashion-MNIST build from their archives without it
(``archive_builds``); the other datasets, and a download, run the stock TFDS builder,
which needs TensorFlow (``pip install 'resnet_flax[build]'``).

TFDS's own ``tfds.load`` retries downloads for minutes when offline; here an
unprepared dataset with no archives and no reachable download host fails in
well under a second with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import pathlib
import re
import socket
import urllib.parse

import numpy as np
import tensorflow_datasets as tfds

from resnet_flax import quiet
from resnet_flax.data import archive_builds, datasets, images, png

# A download host that does not answer within this long counts as offline.
_PROBE_TIMEOUT_S = 3.0
_READ_CHUNK = 4096
_WRONG_CHECKSUM = re.compile(r"downloaded to (.+?), has wrong checksum")


class DatasetUnavailable(RuntimeError):
    """The dataset is neither prepared nor buildable here; the message says what to do."""


data_root = datasets.data_root  # The TFDS data directory (TFDS's own rule).


def manual_dir(data_dir: str | None) -> pathlib.Path:
    """Where TFDS looks for archives a user downloaded by hand."""
    return data_root(data_dir) / "downloads" / "manual"


def download_dir(name: str, data_dir: str | None) -> pathlib.Path:
    """Per-dataset TFDS download/extraction dir.

    TFDS names an extracted manual archive after its file name alone
    (``extracted/GZIP.train-images-idx3-ubyte.gz``), and MNIST and Fashion-MNIST
    share file names: in TFDS's shared ``downloads/``, building the second reused
    the first one's extraction and silently stored Fashion-MNIST as MNIST.
    """
    return data_root(data_dir) / "downloads" / name


def build_command(name: str, data_dir: str | None) -> str:
    """The one command that builds ``name`` from archives in a folder."""
    dd = f" --data_dir {data_dir}" if data_dir else ""
    return f"python -m resnet_flax.data.build {name} --archives /path/to/archives{dd}"


def _host_reachable(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=_PROBE_TIMEOUT_S).close()
        return True
    except OSError:
        return False


def _require_tensorflow(name: str) -> None:
    if importlib.util.find_spec("tensorflow") is None:
        raise DatasetUnavailable(
            f"building the TFDS dataset {name!r} needs TensorFlow, which is not installed: "
            "pip install 'resnet_flax[build]' (training on the built dataset does not need it)")


def prepare(name: str, data_dir: str | None = None, archives: str | None = None,
            allow_download: bool = True):
    """Returns the TFDS builder of ``name`` with its data prepared on disk.

    Builds from ``archives`` (a folder with the original files) or from
    ``<data_dir>/downloads/manual`` when the files are there, otherwise downloads
    when ``allow_download`` and the host answers, otherwise raises
    ``DatasetUnavailable`` at once. TFDS verifies each archive's checksum.
    """
    if datasets.is_folder(name):
        return _built_folder(name, data_dir)
    spec = datasets.get(name)
    builder = tfds.builder(name, data_dir=str(data_root(data_dir)))
    if builder.is_prepared() and archives is None:
        return builder

    source = pathlib.Path(archives).expanduser() if archives else manual_dir(data_dir)
    present = [f for f in spec.archives if (source / f).is_file()]
    if archives is not None and len(present) < len(spec.archives):
        missing = sorted(set(spec.archives) - set(present))
        raise DatasetUnavailable(
            f"{source} lacks {missing} needed to build {name!r}; expected {spec.archive_hint}: "
            f"{list(spec.archives)}")
    if builder.is_prepared():
        return builder

    urls = sorted(builder.url_infos or {})
    if len(present) == len(spec.archives) and name in archive_builds.SPLITS:
        _build_own(builder, source, spec.archive_hint)
        return tfds.builder(name, data_dir=str(data_root(data_dir)))
    if len(present) == len(spec.archives):
        config = tfds.download.DownloadConfig(manual_dir=str(source))
    elif allow_download and urls and not spec.manual_only and _host_reachable(urls[0]):
        config = tfds.download.DownloadConfig()
    else:
        why = ("TFDS cannot download it" if spec.manual_only else
               "no network" if allow_download else "allow_download is off")
        raise DatasetUnavailable(
            f"TFDS dataset {name!r} is not prepared in {data_root(data_dir)} and cannot be "
            f"downloaded ({why}); build it offline from {spec.archive_hint} "
            f"({', '.join(spec.archives)}) with `{build_command(name, data_dir)}`, "
            f"or put those files in {manual_dir(data_dir)} and run again")
    _require_tensorflow(name)
    _download_and_prepare(builder, config, download_dir(name, data_dir), spec.archive_hint)
    return builder


def _build_own(builder, archives: pathlib.Path, archive_hint: str) -> None:
    try:
        archive_builds.build(builder, archives)
    except archive_builds.ArchiveMismatch as e:
        raise _not_original(e.path, builder.name, archive_hint) from None


def _not_original(path, name: str, archive_hint: str) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"{path} is not the original {name} file (its checksum differs from the one TFDS "
        f"records); the build needs {archive_hint}")


def _built_folder(name: str, data_dir: str | None):
    """The TFDS builder of a built folder dataset (``data/folders.py``)."""
    try:
        datasets.folder_record(name, data_dir)
    except datasets.FolderNotBuilt as e:
        raise DatasetUnavailable(str(e)) from None
    return tfds.builder_from_directory(str(datasets.folder_tfds_dir(name, data_dir)))


def _download_and_prepare(builder, config, downloads: pathlib.Path, archive_hint: str) -> None:
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    offline = config.manual_dir is not None
    try:
        with quiet.offline_build() if offline else contextlib.nullcontext(), \
                png.pillow_encoding():
            builder.download_and_prepare(download_dir=str(downloads), download_config=config,
                                         file_format="array_record")
    except NonMatchingChecksumError as e:  # A damaged or different file under the right name.
        found = _WRONG_CHECKSUM.search(str(e))
        raise _not_original(found[1] if found else "an archive", builder.name,
                            archive_hint) from None


def channels(source_or_builder) -> int:
    """The channels of a dataset's images (its image feature's last dimension)."""
    info = getattr(source_or_builder, "info", None) or source_or_builder.dataset_info
    return info.features["image"].shape[-1]


def _read_data_source(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    source = _undecoded_source(builder, split)
    pixels, labels, c = [], [], channels(builder)
    try:
        for start in range(0, len(source), _READ_CHUNK):
            stop = min(start + _READ_CHUNK, len(source))
            for example in source.__getitems__(range(start, stop)):
                pixels.append(images.decode(example["image"], c))
                labels.append(example["label"])
    except READ_ERRORS as e:
        raise unreadable(builder, split, e) from None
    return np.stack(pixels), np.asarray(labels, np.int32)


def _undecoded_source(builder, split: str):
    """``split``'s random-access source with images left as stored (a file's bytes, or
    raw pixels): every reader decodes them by one rule, ``images.decode``, in the crop's
    own way where it can (``crops``)."""
    image = builder.info.features["image"]
    decoders = None if isinstance(image, tfds.features.Tensor) else {
        "image": tfds.decode.SkipDecoding()}
    return builder.as_data_source(split=split, decoders=decoders)


# array_record's "Corrupted Riegeli/records file" and kin, on either input path.
READ_ERRORS = (RuntimeError, ValueError, OSError)


def unreadable(builder_or_source, split: str, error: Exception) -> DatasetUnavailable:
    """The one line for a split whose files are damaged: the folder, the cause, and the
    command that builds it again."""
    info = builder_or_source.info if hasattr(builder_or_source, "info") else \
        builder_or_source.dataset_info  # A data source keeps its builder's info.
    folder, parts = pathlib.Path(info.data_dir), info.full_name.split("/")
    # <data_dir>/<name>[/<config>]/<version>: the name as the build command takes it.
    name, data_dir = "/".join(parts[:-1]), str(folder.parents[len(parts) - 1])
    command = build_command(name, data_dir)
    record = folder.parents[1] / datasets.FOLDER_RECORD  # <store>/folder/1.0.0
    if record.is_file():  # A folder of images: <data_dir>/folders/<store>.
        source = json.loads(record.read_text())["source"]
        command = datasets.folder_build_command(datasets.FOLDER_PREFIX + source,
                                                str(folder.parents[3])) + " --overwrite"
    cause = str(error).strip().splitlines()[0][:200] if str(error).strip() else \
        type(error).__name__
    return DatasetUnavailable(
        f"{folder}: the {split} split cannot be read ({cause}); delete that folder and "
        f"build it again: {command}")


def _read_tf_dataset(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads a dataset built by plain ``tfds.load`` (tfrecord); needs TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        raise DatasetUnavailable(
            f"{builder.data_dir} is in {builder.info.file_format} format, which needs "
            "TensorFlow to read; rebuild it as array_record with "
            f"`{build_command(builder.name, None)}` or pip install 'resnet_flax[build]'")
    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    return np.asarray(data["image"]), np.asarray(data["label"], np.int32)


def load_split(name: str, split: str, data_dir: str | None = None,
               allow_download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """All of ``split`` as (uint8 images NHWC, int32 labels), preparing it if needed."""
    builder = prepare(name, data_dir, allow_download=allow_download)
    if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
        pixels, labels = _read_data_source(builder, split)
    else:
        pixels, labels = _read_tf_dataset(builder, split)
    expected = datasets.get(name, data_dir).image_shape
    if pixels.shape[1:] != expected:
        raise DatasetUnavailable(f"{name} {split}: images have shape {pixels.shape[1:]}, "
                                 f"expected {expected}")
    return pixels, labels


def data_source(name: str, split: str, data_dir: str | None = None,
                allow_download: bool = True):
    """``split`` as TFDS's random-access ``array_record`` source (images as stored, for
    ``images.decode``; picklable, for Grain's workers), preparing the dataset if needed."""
    builder = prepare(name, data_dir, allow_download=allow_download)
    try:
        return _undecoded_source(builder, split)
    except NotImplementedError:  # TFDS's answer for a tfrecord dataset.
        raise DatasetUnavailable(
            f"{builder.data_dir} is in {builder.info.file_format} format; the stream input "
            f"reads array_record: rebuild it with `{build_command(name, data_dir)}`") from None


def class_names(name: str, data_dir: str | None = None,
                allow_download: bool = True) -> list[str]:
    """The label names of dataset ``name`` (its TFDS ``ClassLabel``), index order."""
    builder = prepare(name, data_dir, allow_download=allow_download)
    return list(builder.info.features["label"].names)
