"""The two input paths (``config.input``), behind one interface the Trainer uses.

- ``Device`` ("device", the default): each split held whole in device memory as uint8,
  a batch is an index array the compiled step gathers with. No input work per step:
  the fastest path for what fits (MNIST, CIFAR).
- ``Stream`` ("stream"): Grain reads the TFDS ``array_record`` files batch by batch
  (``stream.py``), in worker processes, each process only its rows of every global
  batch; batches go to the devices a few steps ahead. For data larger than device
  memory and images of any size (ImageNet).

Both give the steps of one epoch in the same order, ``pipeline.train_batches(seed,
epoch)``: with the same augmentation they train the same model. A source is built on
the host (``open_source``), then ``place``d on the devices of a ``train.parallel``
mode. What it hands the step each time is its *data*; its ``batch(data)``, called
inside the compiled step, turns that into the batch the one train or eval step takes
(the device input gathers the rows its indices name; the stream's data is the batch).
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterator

import numpy as np

from resnet_flax.data import canvas, datasets, pipeline, policies, tfds_source

# Batches put on the devices ahead of the step that takes them.
_DEVICE_PREFETCH = 2


def gather(data: tuple) -> tuple:
    """(split images, split labels, indices, *rest) -> (images, labels, *rest) of the
    indexed examples: the device input's batch, gathered inside the compiled step."""
    images, labels, indices, *rest = data
    return (images[indices], labels[indices], *rest)


class Device:
    """Whole splits in device memory; a step's data is (images, labels, indices) and, to
    evaluate, the mask: the indices and mask this process's rows of the batch."""

    batch = staticmethod(gather)

    def __init__(self, train: pipeline.Split, test: pipeline.Split):
        self._host = (train, test)
        self.num_train, self.num_test = len(train), len(test)
        self.image_shape = tuple(train.images.shape[1:])

    def place(self, mode, config) -> None:
        train, test = self._host
        self.mode, self.config = mode, config
        self._rows = mode.process_rows(config.batch_size)
        self._eval_rows = mode.process_rows(config.eval_batch_size)
        self._train = mode.put_replicated((train.images, train.labels))
        self._test = mode.put_replicated((test.images, test.labels))
        self._host = None  # The device copies are the data now.

    def train_batches(self, epoch: int, first: int) -> Iterator[tuple]:
        """The data arguments of each step of ``epoch`` from step ``first`` on."""
        order = train_order(self.config, self.mode, epoch, self.num_train)
        for indices in order[first:]:
            yield (*self._train, self.mode.put_rows(indices[self._rows]))

    def train_chunks(self, epoch: int, lengths: list[int], width: int) -> Iterator[tuple]:
        """The data of each chunk of the last ``sum(lengths)`` steps of ``epoch``, chunks
        of ``lengths`` steps: (images, labels, indices (rows, width): a step a column,
        the columns past the chunk's length zero). One shape for every chunk: one program."""
        order = train_order(self.config, self.mode, epoch, self.num_train)
        start = len(order) - sum(lengths)
        for length in lengths:
            columns = np.zeros((width, order.shape[1]), order.dtype)
            columns[:length] = order[start:start + length]
            start += length
            yield (*self._train, self.mode.put_rows(columns.T[self._rows]))

    def eval_batches(self) -> Iterator[tuple]:
        """The data arguments of each eval step: every test example once (mask 0 pads)."""
        rows = self._eval_rows
        for indices, mask in zip(*pipeline.eval_batches(self.num_test,
                                                        self.config.eval_batch_size)):
            yield (*self._test, *self.mode.put_rows((indices[rows], mask[rows])))

    def example_train_args(self) -> tuple:
        rows = self._rows.stop - self._rows.start
        return (*self._train, self.mode.put_rows(np.zeros(rows, np.int32)))

    def example_chunk_args(self, width: int) -> tuple:
        rows = self._rows.stop - self._rows.start
        return (*self._train, self.mode.put_rows(np.zeros((rows, width), np.int32)))

    def example_eval_args(self) -> tuple:
        rows = self._eval_rows.stop - self._eval_rows.start
        return (*self._test, *self.mode.put_rows((np.zeros(rows, np.int32),
                                                  np.zeros(rows, np.float32))))

    def position(self) -> dict | None:
        """Where the input stands (nothing to save: the order is the step's function)."""
        return None

    def resume(self, position: dict | None, step: int) -> None:
        del position, step

    def close(self) -> None:
        pass


class Stream:
    """Batches read from array_record files by Grain; a step's data is (images, labels)
    (and the mask, to evaluate), this process's rows of the global batch: the batch."""

    @staticmethod
    def batch(data: tuple) -> tuple:
        return data

    def __init__(self, config):
        # Grain is imported here, not at the top: the device input runs without it.
        from resnet_flax.data import stream

        self._pipelines = stream
        spec = datasets.get(config.dataset, config.data_dir or None)
        read = dict(data_dir=config.data_dir or None, allow_download=config.allow_download)
        self._train_source = tfds_source.data_source(config.dataset, spec.train_split, **read)
        self._test_source = tfds_source.data_source(config.dataset, spec.test_split, **read)
        self._examples = pipeline.drawn_or_all(len(self._train_source), config.train_subset)
        self._test_examples = pipeline.drawn_or_all(len(self._test_source), config.test_subset)
        self.num_train, self.num_test = len(self._examples), len(self._test_examples)
        side = canvas.run_side(config)
        self.crop = stream.Crop(config.crop, config.crop_size, tuple(config.crop_scale),
                                tuple(config.crop_ratio), config.eval_crop_fraction,
                                canvas=side, policy=augment_policy(config),
                                eval_size=eval_crop_size(config))
        self.image_shape = image_shape(config)
        self.eval_image_shape = image_shape(config, eval_crop_size(config))
        # A training batch's images: the crops, or the boxes the step resizes to them.
        self.train_image_shape = (side + 1, side, self.image_shape[-1]) if side else \
            self.image_shape
        self._position = self._resumed = self._live = self._host = None
        self._offset = self._next_step = 0

    def place(self, mode, config) -> None:
        self.mode, self.config = mode, config
        self._rows = mode.process_rows(config.batch_size)
        self._eval_rows = mode.process_rows(config.eval_batch_size)

    def train_batches(self, epoch: int, first: int) -> Iterator[tuple]:
        """Epoch ``epoch``'s batches from step ``first`` on. One Grain iterator serves the
        run: its workers carry on into the next epoch while this one is evaluated; a
        resumed run recreates it from the iterator state saved for the resumed step."""
        c = self.config
        steps = pipeline.steps_per_epoch(self.num_train, c.batch_size)
        start = epoch * steps + first
        if self._live is None or self._next_step != start:
            self._open(start)
        for _ in range(steps - first):
            try:
                batch, grain_state = next(self._live)
            except tfds_source.READ_ERRORS as e:  # A damaged record, read by a worker.
                raise tfds_source.unreadable(self._train_source, "train", e) from None
            self._next_step += 1
            # The iterator state after this batch: a checkpoint taken after its step
            # resumes with the next one.
            self._position = {"offset": self._offset, "step": self._next_step,
                              "grain": grain_state}
            yield batch["image"], batch["label"]

    def _open(self, start: int) -> None:
        """The run's iterator, positioned before global step ``start``."""
        c = self.config
        offset, state = start, None
        if self._resumed and self._resumed["step"] == start:
            offset, state = self._resumed["offset"], self._resumed["grain"]
        self._resumed = None
        dataset = self._pipelines.train_dataset(
            self._train_source, self._examples, c.seed, c.num_epochs, c.batch_size,
            self._rows, self.crop, c.repeated_augment, self.mode.mesh.devices.size)
        self.close()
        self._host = self._pipelines.batches(dataset[offset:], c.input_workers, state)
        # Batches go to the devices ahead of their steps, across epoch ends as well.
        self._live = _ahead(self._host, self.mode.put_rows)
        self._offset, self._next_step = offset, start

    def close(self) -> None:
        """Stops the training iterator's worker processes (a new one starts on demand)."""
        if self._live is not None:
            self._live.close()
            self._host.close()
            self._live = self._host = None

    def eval_batches(self) -> Iterator[tuple]:
        dataset = self._pipelines.eval_dataset(
            self._test_source, self._test_examples, self.config.eval_batch_size,
            self._eval_rows, self.crop)
        batches = _ahead(self._pipelines.batches(dataset, self.config.input_workers),
                         self.mode.put_rows)
        try:
            for batch, _ in batches:
                yield batch["image"], batch["label"], batch["mask"]
        except tfds_source.READ_ERRORS as e:
            raise tfds_source.unreadable(self._test_source, "test", e) from None

    def example_train_args(self) -> tuple:
        rows = self._rows.stop - self._rows.start
        return self.mode.put_rows((np.zeros((rows, *self.train_image_shape), np.uint8),
                                   np.zeros(rows, np.int32)))

    def example_eval_args(self) -> tuple:
        rows = self._eval_rows.stop - self._eval_rows.start
        return self.mode.put_rows((np.zeros((rows, *self.eval_image_shape), np.uint8),
                                   np.zeros(rows, np.int32), np.zeros(rows, np.float32)))

    def position(self) -> dict | None:
        """Grain's iterator state after the last batch handed out, with the global step it
        belongs to and the step its iterator started at (saved with each checkpoint)."""
        return self._position

    def resume(self, position: dict | None, step: int) -> None:
        """Continue from a checkpoint's ``position``, if it is the one of ``step`` (the
        order being a function of the step, slicing would give the same batches)."""
        if position and position.get("step") == step:
            self._resumed = position


def _ahead(host: Iterator[tuple[dict, dict]], put) -> Iterator[tuple[dict, dict]]:
    """``host``'s (batch, state) pairs with each batch put on the devices
    ``_DEVICE_PREFETCH`` steps before it is needed (transfers overlap the steps)."""
    queue = collections.deque()
    for batch, state in host:
        queue.append((put(batch), state))
        if len(queue) > _DEVICE_PREFETCH:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def image_shape(config, size: int = 0) -> tuple[int, int, int]:
    """The (H, W, C) of a batch's images: the crop's size (``size``, else
    ``config.crop_size``), or the dataset's own."""
    h, w, c = datasets.get(config.dataset, config.data_dir or None).image_shape
    size = size or config.crop_size
    return (size, size, c) if config.crop != "none" else (h, w, c)


def eval_crop_size(config) -> int:
    """The side of evaluation's centre crop: ``eval_crop_size``, else the training crop's."""
    return config.eval_crop_size or config.crop_size


def train_order(config, mode, epoch: int, num_train: int) -> np.ndarray:
    """``epoch``'s (steps, batch) indices, repeated augmentation dealt over ``mode``'s
    devices (``config.repeated_augment``)."""
    return pipeline.train_batches(config.seed, epoch, num_train, config.batch_size,
                                  config.repeated_augment, mode.mesh.devices.size)


def augment_policy(config):
    """The policy ``config.auto_augment`` names for the training crops (None: none), filling
    with the mean the images are normalised by where the policy fills with a mean."""
    if not config.auto_augment:
        return None
    spec = datasets.get(config.dataset, config.data_dir or None)
    imagenet = config.normalization == "imagenet" and spec.image_shape[-1] == 3
    return policies.build(config.auto_augment, config.auto_augment_interpolation,
                          image_shape(config)[0], datasets.IMAGENET_MEAN if imagenet else
                          spec.mean)


def open_source(config) -> Device | Stream:
    """The input ``config.input`` names, read on the host (``place`` puts it on devices)."""
    return Stream(config) if config.input == "stream" else Device(*load_splits(config))


def load_splits(config) -> tuple[pipeline.Split, pipeline.Split]:
    """The train and test splits (or ``train_subset`` and ``test_subset`` of them) of
    ``config.dataset`` as in-memory arrays (the device path's data)."""
    spec = datasets.get(config.dataset, config.data_dir or None)
    load = functools.partial(tfds_source.load_split, config.dataset,
                             data_dir=config.data_dir or None,
                             allow_download=config.allow_download)
    train = pipeline.Split(*load(spec.train_split))
    if config.train_subset and config.train_subset < len(train):
        train = train.subset(config.train_subset)
    test = pipeline.Split(*load(spec.test_split))
    if config.test_subset and config.test_subset < len(test):
        test = test.subset(config.test_subset)
    return train, test
