"""Batch order for small datasets held whole on the device.

Batches are index arrays into on-device image/label arrays; the step gathers
them. The order is a pure function of (seed, epoch), so a run resumed from any
checkpoint sees exactly the batches an uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Split:
    """One split in memory: uint8 NHWC images and int32 labels."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int) -> Split:
        """``n`` examples drawn once without replacement by a fixed generator (the same for
        every seed and run, so arms and seeds of an experiment share them), kept in order."""
        keep = subset_indices(len(self), n)
        return Split(self.images[keep], self.labels[keep])


def drawn_or_all(num_examples: int, n: int) -> np.ndarray:
    """``subset_indices`` of ``n`` where ``0 < n < num_examples`` (a config's
    ``train_subset`` or ``test_subset``), else every index."""
    return subset_indices(num_examples, n) if 0 < n < num_examples else np.arange(num_examples)


def subset_indices(num_examples: int, n: int) -> np.ndarray:
    """The sorted indices of ``Split.subset``'s fixed draw of ``n`` examples."""
    if not 0 < n <= num_examples:
        raise ValueError(f"a subset of {n} from {num_examples} examples")
    return np.sort(np.random.default_rng(0).permutation(num_examples)[:n])


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Full training batches per epoch (the remainder is reshuffled into the next)."""
    if batch_size > num_examples:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_examples} training examples")
    return num_examples // batch_size


def train_batches(seed: int, epoch: int, num_examples: int, batch_size: int,
                  repeats: int = 1, devices: int = 1) -> np.ndarray:
    """(steps, batch_size) indices: a fresh permutation for every (seed, epoch).

    ``repeats`` > 1: repeated augmentation as torchvision's ``RASampler`` and timm's
    ``RepeatAugSampler`` draw it: each image of the permutation ``repeats`` times in a row,
    the epoch as long as without (so about 1 / repeats of the images), and the copies dealt
    to the ``devices`` in turn, as the samplers deal them to ranks: device d's rows of a
    step are positions d, d + devices, ... of the sequence (distinct images on a device).
    """
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    steps = steps_per_epoch(num_examples, batch_size)
    if repeats <= 1:
        return order[: steps * batch_size].reshape(steps, batch_size).astype(np.int32)
    if batch_size % devices:
        raise ValueError(f"batch_size={batch_size} does not split over {devices} devices")
    dealt = np.repeat(order, repeats)[: steps * batch_size]
    by_device = dealt.reshape(steps, batch_size // devices, devices).transpose(0, 2, 1)
    return by_device.reshape(steps, batch_size).astype(np.int32)


def eval_batches(num_examples: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and 0/1 mask covering every example exactly once.

    The last batch is padded with index 0 and mask 0, so it keeps the compiled
    shape and the padding counts for nothing.
    """
    num_batches = -(-num_examples // batch_size)
    flat = np.zeros(num_batches * batch_size, np.int32)
    flat[:num_examples] = np.arange(num_examples)
    mask = np.zeros(num_batches * batch_size, np.float32)
    mask[:num_examples] = 1.0
    return flat.reshape(num_batches, batch_size), mask.reshape(num_batches, batch_size)
