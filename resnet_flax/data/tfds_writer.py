"""A TFDS dataset written without TensorFlow: ``array_record`` shards and TFDS's metadata.

TFDS's builders need TensorFlow to write (``tf.io.gfile``, ``tf.image.encode_png``, its
ad hoc builder), though readers do not. This writes what they write from TFDS's own
TensorFlow-free pieces: each example encoded by its features (images arrive as encoded
bytes) and serialized by ``ExampleSerializer`` (TFDS's vendored Example protos), put in
TFDS's order (keys hashed with the split's name as salt, or kept in key order), cut
into shards by TFDS's rule, written by ``array_record`` as TFDS's file adapter writes,
and described by TFDS's ``DatasetInfo``. Every example decodes as in TFDS's own build,
at the same place; the bytes differ only in the order of each example's features, which
TFDS's protobuf maps leave to chance in each process, and which here is sorted, so a
build writes the same bytes every time.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator

from array_record.python import array_record_module
from tensorflow_datasets.core import (
    example_serializer,
    file_adapters,
    hashing,
    naming,
    splits,
    writer,
)
from tensorflow_datasets.core.utils import shard_utils

FILE_FORMAT = file_adapters.FileFormat.ARRAY_RECORD
# TFDS's file adapter's options: one record a chunk, so any record reads alone.
_RECORD_OPTIONS = "group_size:1"
_LENGTH = struct.Struct("<Q")


class DuplicateKey(ValueError):
    """Two examples of one split under one key (TFDS's order needs distinct keys)."""


class _Ordered:
    """Serialized examples put in TFDS's order: sorted by their keys' hashes (salted
    with the split's name) when shuffled, held in memory; else in key order, as they
    come (the keys must rise), spilled to a file beside the shards."""

    def __init__(self, folder: pathlib.Path, salt: str, shuffled: bool):
        self.count, self.size, self._shuffled = 0, 0, shuffled
        self._hasher, self._last = hashing.Hasher(salt), None
        self._held: list[tuple[int, bytes]] = []
        self._spill = None if shuffled else tempfile.TemporaryFile(dir=folder)

    def add(self, key, record: bytes) -> None:
        order = self._hasher.hash_key(key) if self._shuffled else key
        if not self._shuffled:
            if self._last is not None and not order > self._last:
                raise DuplicateKey(f"key {key!r} after {self._last!r}: keys must rise")
            self._spill.write(_LENGTH.pack(len(record)) + record)
        else:
            self._held.append((order, record))
        self._last, self.count, self.size = order, self.count + 1, self.size + len(record)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        if self._shuffled:
            self._held.sort(key=lambda item: item[0])
            for (a, _), (b, _) in zip(self._held, self._held[1:]):
                if a == b:
                    raise DuplicateKey(f"two examples share a key (hash {a})")
            yield from self._held
            return
        self._spill.seek(0)
        for index in range(self.count):
            (length,) = _LENGTH.unpack(self._spill.read(_LENGTH.size))
            yield index, self._spill.read(length)
        self._spill.close()


def write_split(features, examples: Iterable[tuple], template: naming.ShardedFileTemplate,
                shuffled: bool, compressed: bool = True) -> splits.SplitInfo:
    """Writes ``examples`` ((key, example) pairs) as ``template``'s split: encoded by
    ``features``, in TFDS's order, in TFDS's shards; returns its ``SplitInfo``.
    ``compressed=False`` leaves out TFDS's zstd, which halves the read rate of raw
    pixels (barely smaller for it); the files' own options say how to read them."""
    serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
    ordered = _Ordered(template.data_dir, template.split, shuffled)
    for key, example in examples:
        example_proto = serializer.get_tf_example(features.encode_example(example))
        ordered.add(key, example_proto.SerializeToString(deterministic=True))
    if not ordered.count:
        raise ValueError(f"the {template.split} split has no examples")
    specs = writer._get_shard_specs(ordered.count, ordered.size, [ordered.count], template,
                                    shard_utils.ShardConfig())
    records, options = iter(ordered), _RECORD_OPTIONS + ("" if compressed else ",uncompressed")
    for spec in specs:
        shard = array_record_module.ArrayRecordWriter(os.fspath(spec.path), options)
        for _, record in itertools.islice(records, spec.examples_number):
            shard.write(record)
        shard.close()
    return splits.SplitInfo(name=template.split,
                            shard_lengths=[int(s.examples_number) for s in specs],
                            num_bytes=ordered.size, filename_template=template)


def write_dataset(info, split_examples: dict[str, Iterable[tuple]], folder: pathlib.Path,
                  shuffled: bool, compressed: bool = True) -> None:
    """Writes every split of ``split_examples`` and ``info`` (a ``DatasetInfo`` whose
    features encode the examples) into ``folder``, whole or not at all: the files go
    to a sibling first, renamed into place at the end."""
    folder = pathlib.Path(folder)
    partial = folder.with_name(folder.name + ".incomplete")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        infos = []
        for split, examples in split_examples.items():
            template = naming.ShardedFileTemplate(
                data_dir=partial, dataset_name=info.name, split=split,
                filetype_suffix=FILE_FORMAT.file_suffix)
            infos.append(write_split(info.features, examples, template, shuffled, compressed))
        info.set_file_format(FILE_FORMAT, override=True)
        info.set_splits(splits.SplitDict(infos))
        info.write_to_directory(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
