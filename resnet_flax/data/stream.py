"""The streaming input's Grain pipelines: a TFDS ``array_record`` split read batch by batch.

Nothing here runs TensorFlow. Which example goes where is decided up front, as for the
device path: the epoch's order is ``pipeline.train_batches(seed, epoch, ...)`` and this
process reads only its rows of every global batch (``parallel.process_rows``), so one
process or many, device or stream, see the same global batches. Reading, decoding and
cropping run in Grain's worker processes (``workers`` > 0). Each example's crop is drawn
from ``(seed, epoch, position in the epoch)``: the same whichever process or worker reads
it, and after a resume.

A pipeline is a ``grain.MapDataset`` of batches (random access), iterated through Grain's
checkpointable iterator; ``batches`` yields each batch with the iterator state after it,
which a checkpoint stores (``sources.Stream``) so a resumed run continues there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import grain
import numpy as np

from resnet_flax import quiet
from resnet_flax.data import crops, pipeline

# Host batches Grain prepares ahead of the step, per worker.
_WORKER_BUFFER = 2


@dataclasses.dataclass(frozen=True)
class Crop:
    """Host-side cropping: ``kind`` "none" (images pass as stored, all one size) or
    "inception" (random-resized crop for training, centre crop for evaluation)."""

    kind: str = "none"
    size: int = 224
    scale: tuple[float, float] = crops.INCEPTION_SCALE
    ratio: tuple[float, float] = crops.INCEPTION_RATIO
    eval_fraction: float = crops.EVAL_FRACTION


class _InWorker:
    """Grain pickles a map function to its workers: there, on arrival, the console noise
    ``quiet`` drops (TFDS's "OpenCV is not installed", once per worker) goes too."""

    def __setstate__(self, state):
        self.__dict__.update(state)
        quiet.silence_third_party()


class _ReadTrain(_InWorker):
    """(position in the epoch, example index) -> {"image", "label"}, cropped. A class, not
    a closure: Grain pickles it to its workers."""

    def __init__(self, source, crop: Crop, seed: int, epoch: int):
        self.source, self.crop, self.seed, self.epoch = source, crop, seed, epoch

    def __call__(self, item) -> dict:
        position, index = (int(v) for v in item)
        example = self.source[index]
        image = np.asarray(example["image"])
        if self.crop.kind == "inception":
            rng = np.random.default_rng([self.seed, self.epoch, position])
            image = crops.random_resized_crop(rng, image, self.crop.size, self.crop.scale,
                                              self.crop.ratio)
        return {"image": image, "label": np.int32(example["label"])}


class _ReadEval(_InWorker):
    """(example index, mask) -> {"image", "label", "mask"}, centre-cropped."""

    def __init__(self, source, crop: Crop):
        self.source, self.crop = source, crop

    def __call__(self, item) -> dict:
        index, mask = int(item[0]), np.float32(item[1])
        example = self.source[index]
        image = np.asarray(example["image"])
        if self.crop.kind == "inception":
            image = crops.centre_crop(image, self.crop.size, self.crop.eval_fraction)
        return {"image": image, "label": np.int32(example["label"]), "mask": mask}


def train_dataset(source, examples: np.ndarray, seed: int, epoch: int, global_batch: int,
                  rows: slice, crop: Crop) -> grain.MapDataset:
    """Epoch ``epoch``'s batches for this process: its ``rows`` of each global batch of
    ``examples`` (indices into ``source``: the split, or a subset of it)."""
    order = pipeline.train_batches(seed, epoch, len(examples), global_batch)
    positions = np.arange(order.size).reshape(order.shape)
    items = np.stack([positions[:, rows], examples[order[:, rows]]], -1).reshape(-1, 2)
    local = rows.stop - rows.start
    return (grain.MapDataset.source(items).map(_ReadTrain(source, crop, seed, epoch))
            .batch(local, drop_remainder=True))


def eval_dataset(source, num_examples: int, global_batch: int, rows: slice,
                 crop: Crop) -> grain.MapDataset:
    """Every example once, this process's rows of each global eval batch; the last batch
    padded (mask 0), as ``pipeline.eval_batches``."""
    indices, mask = pipeline.eval_batches(num_examples, global_batch)
    items = np.stack([indices[:, rows], mask[:, rows]], -1).reshape(-1, 2)
    local = rows.stop - rows.start
    return (grain.MapDataset.source(items).map(_ReadEval(source, crop))
            .batch(local, drop_remainder=True))


def batches(dataset: grain.MapDataset, workers: int, state: dict | None = None
            ) -> Iterator[tuple[dict, dict]]:
    """(batch, iterator state after it) for every batch of ``dataset``, read by ``workers``
    processes (0: this one), continuing from ``state`` (an earlier ``get_state()``)."""
    iterable = dataset.to_iter_dataset()
    if workers:
        _absl_flags_parsed()
        quiet.silence_worker_processes()
        iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=workers, per_worker_buffer_size=_WORKER_BUFFER))
    iterator = iter(iterable)
    if state is not None:
        iterator.set_state(state)
    try:
        for batch in iterator:
            # Copies: a worker's batch arrives in shared memory, which Grain unlinks when
            # its array is collected, and cannot while a view of it lives on.
            yield {k: np.array(v) for k, v in batch.items()}, iterator.get_state()
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:  # Stops the worker processes now, not at garbage collection.
            close()


def _absl_flags_parsed() -> None:
    """Grain's worker start-up reads absl flags, which a program without absl's ``app``
    (a test, a notebook) never parsed: take their defaults."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
