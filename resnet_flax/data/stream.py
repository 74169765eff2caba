"""The streaming input's Grain pipelines: a TFDS ``array_record`` split read batch by batch.

Nothing here runs TensorFlow. Which example goes where is decided up front, as for the
device path: the epoch's order is ``pipeline.train_batches(seed, epoch, ...)`` and this
process reads only its rows of every global batch (``parallel.process_rows``), so one
process or many, device or stream, see the same global batches. Reading, decoding and
cropping run in Grain's worker processes (``workers`` > 0). Each example's crop is drawn
from ``(seed, epoch, position in the epoch)``: the same whichever process or worker reads
it, and after a resume.

A pipeline is a ``grain.MapDataset`` of batches (random access): for training, every step
of the run, so that one iterator, and one set of worker processes, serves all epochs.
``batches`` iterates it through Grain's checkpointable iterator and yields each batch with
the iterator state after it, which a checkpoint stores (``sources.Stream``) so a resumed
run continues there.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np
from PIL import Image

from resnet_flax import quiet
from resnet_flax.data import canvas, crops, images, pipeline, tfds_source

# Host batches Grain prepares ahead of the step, per worker.
_WORKER_BUFFER = 2
# Reading threads in the training process: Grain's default.
_MAX_THREADS = 16


@dataclasses.dataclass(frozen=True)
class Crop:
    """Host-side cropping: ``kind`` "none" (images pass as stored, all one size) or
    "inception" (random-resized crop for training, centre crop for evaluation)."""

    kind: str = "none"
    size: int = 224
    scale: tuple[float, float] = crops.INCEPTION_SCALE
    ratio: tuple[float, float] = crops.INCEPTION_RATIO
    eval_fraction: float = crops.EVAL_FRACTION
    # Training crops decode a JPEG at a reduced DCT scale where the box allows.
    reduce: bool = True
    # > 0: a raw store's training crops go out as boxes on canvases of this side, for
    # the step to resize (``data/canvas.py``).
    canvas: int = 0
    # An augmentation policy for each training crop (``data/policies``), or None.
    policy: Any = None
    eval_size: int = 0  # > 0: evaluation's crop size where it is not ``size``.


class _InWorker:
    """Grain pickles a map function to its workers. There, on arrival: the console noise
    ``quiet`` drops (TFDS's "OpenCV is not installed", once per worker) goes too, and the
    worker ends with its parent (``_exit_with_parent``)."""

    source: object  # The split: random access to {"image", "label"} by index.

    def __setstate__(self, state):
        self.__dict__.update(state)
        quiet.silence_third_party()
        _exit_with_parent()

    channels: int

    def _read(self, indices: np.ndarray) -> tuple[list, np.ndarray]:
        """The examples' (images as stored, int32 labels)."""
        examples = [self.source[int(i)] for i in indices]
        return [e["image"] for e in examples], np.array([e["label"] for e in examples],
                                                         np.int32)


_WATCHED = []


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """Ends this worker process when the training process dies (a kill, a crash): a
    worker of a run-long iterator would otherwise wait forever with its buffer full,
    holding the dead run's pipes and memory. Once per process."""
    if _WATCHED or multiprocessing.parent_process() is None:  # Not a worker: no watch.
        return
    parent = os.getppid()
    _WATCHED.append(parent)

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


class _Steps:
    """Random access to the run's training steps, every epoch one after another: step
    ``k`` is (epoch, positions in the epoch, example indices) of this process's rows of
    global step ``k``. One Grain iterator (and its workers) then serves the whole run;
    each epoch's order is computed where it is needed, and kept."""

    def __init__(self, examples: np.ndarray, seed: int, num_epochs: int, global_batch: int,
                 rows: slice, repeats: int = 1, devices: int = 1):
        self.examples, self.seed, self.global_batch = examples, seed, global_batch
        self.repeats, self.devices = repeats, devices
        self.rows = np.arange(rows.start, rows.stop)
        self.steps = pipeline.steps_per_epoch(len(examples), global_batch)
        self.num_epochs = num_epochs
        self._orders = {}

    def __len__(self) -> int:
        return self.num_epochs * self.steps

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: pipeline.train_batches(
                self.seed, epoch, len(self.examples), self.global_batch, self.repeats,
                self.devices)}
        return self._orders[epoch]

    def __getitem__(self, k: int) -> tuple[int, np.ndarray, np.ndarray]:
        epoch, step = divmod(int(k), self.steps)
        return (epoch, step * self.global_batch + self.rows,
                self.examples[self._order(epoch)[step, self.rows]])


class _ReadTrain(_InWorker):
    """(epoch, positions in the epoch, example indices) -> the batch {"image", "label"},
    each image cropped straight into it. A class, not a closure: Grain pickles it to its
    workers."""

    def __init__(self, source, crop: Crop, seed: int):
        self.source, self.crop, self.seed = source, crop, seed
        self.channels = tfds_source.channels(source)

    def __call__(self, item) -> dict:
        epoch, positions, indices = item
        stored, labels = self._read(indices)
        c = self.crop
        if c.kind != "inception" and c.policy is None:
            return {"image": np.stack([images.decode(d, self.channels) for d in stored]),
                    "label": labels}
        rngs = [np.random.default_rng([self.seed, epoch, int(p)]) for p in positions]
        if c.canvas:
            return {"image": self._on_canvases(stored, rngs), "label": labels}
        views = []
        for data, rng in zip(stored, rngs):
            view = self._crop(data, rng)
            views.append(view if c.policy is None else _augmented(c.policy, view, rng))
        return {"image": np.stack(views), "label": labels}

    def _crop(self, data, rng: np.random.Generator) -> np.ndarray:
        c = self.crop
        if c.kind != "inception":
            return images.decode(data, self.channels)
        return crops.train_view(rng, data, self.channels, c.size, c.scale, c.ratio, c.reduce)

    def _on_canvases(self, stored: list, rngs: list) -> np.ndarray:
        """Each image's crop box and the pixels around it, for the step to resize."""
        c = self.crop
        batch = np.empty((len(stored), c.canvas + 1, c.canvas, self.channels), np.uint8)
        for row, (data, rng) in enumerate(zip(stored, rngs)):
            pixels = images.decode(data, self.channels)
            box = crops.inception_box(rng, *pixels.shape[:2], c.scale, c.ratio)
            canvas.place(batch[row], pixels, box, c.size)
        return batch


def _augmented(policy, view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``policy`` applied to a uint8 (H, W, C) crop, drawing from ``rng`` after the crop."""
    image = Image.fromarray(view[..., 0] if view.shape[-1] == 1 else view)
    return np.asarray(policy(image, rng)).reshape(view.shape)


class _ReadEval(_InWorker):
    """(example indices, mask) -> the batch {"image", "label", "mask"}, centre-cropped."""

    def __init__(self, source, crop: Crop):
        self.source, self.crop = source, crop
        self.channels = tfds_source.channels(source)

    def __call__(self, item) -> dict:
        indices, mask = item
        stored, labels = self._read(indices)
        # The last batch's padding rows (mask 0, at its end) count for nothing: not decoded
        # (the first row is, if all are padding, for the batch's shape).
        view = [self._view(d) for d in stored[:max(int(np.count_nonzero(mask)), 1)]]
        view += [np.zeros_like(view[0])] * (len(stored) - len(view))
        return {"image": np.stack(view), "label": labels, "mask": np.asarray(mask, np.float32)}

    def _view(self, data) -> np.ndarray:
        if self.crop.kind == "inception":
            return crops.eval_view(data, self.channels, self.crop.eval_size or self.crop.size,
                                   self.crop.eval_fraction)
        return images.decode(data, self.channels)


def train_dataset(source, examples: np.ndarray, seed: int, num_epochs: int,
                  global_batch: int, rows: slice, crop: Crop, repeats: int = 1,
                  devices: int = 1) -> grain.MapDataset:
    """The run's training batches for this process, epoch after epoch: batch ``k`` is its
    ``rows`` of global step ``k``, drawn from ``examples`` (indices into ``source``: the
    split, or a subset of it) in the order of ``pipeline.train_batches(seed, epoch, ...,
    repeats, devices)``."""
    steps = _Steps(examples, seed, num_epochs, global_batch, rows, repeats, devices)
    return grain.MapDataset.source(steps).map(_ReadTrain(source, crop, seed))


def eval_dataset(source, examples: np.ndarray, global_batch: int, rows: slice,
                 crop: Crop) -> grain.MapDataset:
    """Every example of ``examples`` (indices into ``source``) once, this process's rows of
    each global eval batch; the last batch padded (mask 0), as ``pipeline.eval_batches``."""
    positions, mask = pipeline.eval_batches(len(examples), global_batch)
    indices = np.asarray(examples)[positions]
    items = list(zip(indices[:, rows], mask[:, rows]))
    return grain.MapDataset.source(items).map(_ReadEval(source, crop))


def read_options(workers: int) -> grain.ReadOptions:
    """Grain's reading threads and read-ahead, per process: in the training process
    (``workers`` 0) a thread per core it may use (PIL decodes with the GIL released);
    in a worker process one. A few batches ahead each, not Grain's default of 500
    elements, which are whole batches here."""
    threads = 1 if workers else min(len(os.sched_getaffinity(0)), _MAX_THREADS)
    return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)


def batches(dataset: grain.MapDataset, workers: int, state: dict | None = None
            ) -> Iterator[tuple[dict, dict]]:
    """(batch, iterator state after it) for every batch of ``dataset``, read by ``workers``
    processes (0: this one), continuing from ``state`` (an earlier ``get_state()``)."""
    iterable = dataset.to_iter_dataset(read_options(workers))
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
            if workers:  # A worker's batch arrives in shared memory, which Grain unlinks
                # when its array is collected, and cannot while a view of it lives on.
                batch = {k: np.array(v) for k, v in batch.items()}
            yield batch, iterator.get_state()
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
