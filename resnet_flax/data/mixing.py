"""Mixup and CutMix: each batch mixed with a permutation of itself, on the device.

A mixed batch is (images, ``Mix``): the share ``lam`` of every image that is its own and
the permutation it was mixed with. Both papers' loss is then
``lam * CE(y) + (1 - lam) * CE(y[perm])``, which is the cross-entropy against the
mixed targets (``mixed_targets``), and training accuracy counts a prediction
``lam`` if it is the image's own label and ``1 - lam`` if its partner's (as in the
Mixup authors' code).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct


class Mix(struct.PyTreeNode):
    """``lam`` (scalar) of every image is its own; the rest is ``images[perm]``."""

    lam: jnp.ndarray
    perm: jnp.ndarray

    @classmethod
    def none(cls, n: int) -> Mix:
        return cls(jnp.float32(1.0), jnp.arange(n))


def mixup(rng: jax.Array, x: jnp.ndarray, alpha: float) -> tuple[jnp.ndarray, Mix]:
    """Mixup (Zhang et al. 2018): ``lam * x + (1 - lam) * x[perm]``, ``lam ~ Beta(a, a)``."""
    lam_rng, perm_rng = jax.random.split(rng)
    lam = jax.random.beta(lam_rng, alpha, alpha).astype(jnp.float32)
    perm = jax.random.permutation(perm_rng, x.shape[0])
    return lam * x + (1.0 - lam) * x[perm], Mix(lam, perm)


def cutmix_box(rng: jax.Array, h: int, w: int, lam: jnp.ndarray):
    """Yun et al.'s ``rand_bbox``: sides ``int(side * sqrt(1 - lam))`` around a uniform
    centre, clipped to the image. (top, left, bottom, right)."""
    cy_rng, cx_rng = jax.random.split(rng)
    cut = jnp.sqrt(1.0 - lam)
    cut_h, cut_w = (h * cut).astype(jnp.int32), (w * cut).astype(jnp.int32)
    cy = jax.random.randint(cy_rng, (), 0, h)
    cx = jax.random.randint(cx_rng, (), 0, w)
    return (jnp.clip(cy - cut_h // 2, 0, h), jnp.clip(cx - cut_w // 2, 0, w),
            jnp.clip(cy + cut_h // 2, 0, h), jnp.clip(cx + cut_w // 2, 0, w))


def cutmix(rng: jax.Array, x: jnp.ndarray, alpha: float) -> tuple[jnp.ndarray, Mix]:
    """CutMix (Yun et al. 2019): one box (``cutmix_box``, ``lam ~ Beta(a, a)``) of every
    image replaced by the same box of its partner; ``lam`` becomes the share of pixels
    left, as in the authors' code."""
    lam_rng, perm_rng, box_rng = jax.random.split(rng, 3)
    lam = jax.random.beta(lam_rng, alpha, alpha).astype(jnp.float32)
    perm = jax.random.permutation(perm_rng, x.shape[0])
    _, h, w, _ = x.shape
    top, left, bottom, right = cutmix_box(box_rng, h, w, lam)
    rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    box = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    lam = 1.0 - jnp.sum(box) / (h * w)
    return jnp.where(box[None, :, :, None], x[perm], x), Mix(lam.astype(jnp.float32), perm)


def mix(rng: jax.Array, x: jnp.ndarray, mixup_alpha: float, cutmix_alpha: float,
        prob: float) -> tuple[jnp.ndarray, Mix]:
    """With probability ``prob``, Mixup or CutMix (whichever alpha is > 0; with both,
    one of them at random, half and half as timm does); otherwise ``x`` unchanged."""
    if not (mixup_alpha or cutmix_alpha):
        return x, Mix.none(x.shape[0])
    apply_rng, choice_rng, mixup_rng, cutmix_rng = jax.random.split(rng, 4)
    options = []
    if mixup_alpha:
        options.append(mixup(mixup_rng, x, mixup_alpha))
    if cutmix_alpha:
        options.append(cutmix(cutmix_rng, x, cutmix_alpha))
    mixed = options[0]
    if len(options) == 2:
        use_cutmix = jax.random.bernoulli(choice_rng, 0.5)
        mixed = jax.tree.map(lambda a, b: jnp.where(use_cutmix, b, a), *options)
    apply = jax.random.bernoulli(apply_rng, prob)
    return jax.tree.map(lambda m, u: jnp.where(apply, m, u), mixed, (x, Mix.none(x.shape[0])))


def mixed_targets(labels: jnp.ndarray, mix_: Mix | None, num_classes: int,
                  label_smoothing: float = 0.0) -> jnp.ndarray:
    """``lam * t(y) + (1 - lam) * t(y[perm])`` for (smoothed) one-hot targets ``t``;
    ``t(y)`` when ``mix_`` is None."""
    targets = jax.nn.one_hot(labels, num_classes)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    if mix_ is None:
        return targets
    return mix_.lam * targets + (1.0 - mix_.lam) * targets[mix_.perm]


def partners(labels: jnp.ndarray, mix_: Mix | None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(lam, each example's partner's label): (1, the labels) when nothing is mixed."""
    if mix_ is None:
        return jnp.float32(1.0), labels
    return mix_.lam, labels[mix_.perm]


def correct(logits: jnp.ndarray, labels: jnp.ndarray, partner_labels: jnp.ndarray,
            lam: jnp.ndarray) -> jnp.ndarray:
    """Per example: ``lam`` for predicting its own label, ``1 - lam`` for its partner's."""
    pred = jnp.argmax(logits, -1)
    return lam * (pred == labels) + (1.0 - lam) * (pred == partner_labels)
