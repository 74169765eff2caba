"""Augmentation and normalisation in JAX, run inside the jitted train step.

Operates on uint8 NHWC batches so the dataset can live on the device as
uint8 and never round-trips through the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


def to_model_input(images: jnp.ndarray, size: int = 0, channels: int = 0) -> jnp.ndarray:
    """uint8 NHWC images resized (bilinear) to ``size`` x ``size`` when ``size`` > 0, and a
    single grey channel repeated to ``channels`` when ``channels`` > 0: how a pretrained
    RGB ImageNet net takes Fashion-MNIST."""
    n, h, w, c = images.shape
    if size and (h, w) != (size, size):
        x = jax.image.resize(images.astype(jnp.float32), (n, size, size, c), "bilinear")
        images = jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)
    if channels and c != channels:
        if c != 1:
            raise ValueError(f"cannot turn {c}-channel images into {channels} channels")
        images = jnp.repeat(images, channels, axis=-1)
    return images


def random_crop(rng: jax.Array, images: jnp.ndarray, padding: int) -> jnp.ndarray:
    """torchvision ``RandomCrop(size, padding)``: zero-pad each side, crop back at random."""
    if padding == 0:
        return images
    n, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    offsets = jax.random.randint(rng, (n, 2), 0, 2 * padding + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def hflip(images: jnp.ndarray) -> jnp.ndarray:
    """Mirrors every NHWC image left-right."""
    return images[:, :, ::-1, :]


def random_flip(rng: jax.Array, images: jnp.ndarray) -> jnp.ndarray:
    """Mirrors each image left-right with probability 1/2."""
    flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
    return jnp.where(flip, hflip(images), images)


def augment(rng: jax.Array, images: jnp.ndarray, crop_padding: int, flip: bool) -> jnp.ndarray:
    """Random crop (when ``crop_padding`` > 0) then random flip (when ``flip``)."""
    crop_rng, flip_rng = jax.random.split(rng)
    images = random_crop(crop_rng, images, crop_padding)
    return random_flip(flip_rng, images) if flip else images


def normalize(images: jnp.ndarray, mean: Sequence[float], std: Sequence[float]) -> jnp.ndarray:
    """uint8 0..255 -> float32 ``(x/255 - mean) / std`` per channel."""
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _box_mask(h: int, w: int, top: jnp.ndarray, left: jnp.ndarray, bottom: jnp.ndarray,
              right: jnp.ndarray) -> jnp.ndarray:
    """(N, H, W, 1) bool: rows ``top:bottom`` and columns ``left:right`` of each image."""
    rows = jnp.arange(h)[None, :, None]
    cols = jnp.arange(w)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < bottom[:, None, None])
              & (cols >= left[:, None, None]) & (cols < right[:, None, None]))
    return inside[..., None]


def cutout_boxes(rng: jax.Array, n: int, h: int, w: int, size: int):
    """DeVries & Taylor's boxes: a centre anywhere in the image, ``size // 2`` to each
    side, clipped to the image (so a box at the border is smaller). (top, left,
    bottom, right), each (N,)."""
    cy_rng, cx_rng = jax.random.split(rng)
    cy = jax.random.randint(cy_rng, (n,), 0, h)
    cx = jax.random.randint(cx_rng, (n,), 0, w)
    half = size // 2
    return (jnp.clip(cy - half, 0, h), jnp.clip(cx - half, 0, w),
            jnp.clip(cy + half, 0, h), jnp.clip(cx + half, 0, w))


def cutout(rng: jax.Array, x: jnp.ndarray, size: int) -> jnp.ndarray:
    """Cutout (DeVries & Taylor 2017) on normalised images: one ``size`` x ``size`` square
    per image set to 0 (the dataset mean), as their code does after normalising."""
    if size <= 0:
        return x
    n, h, w, _ = x.shape
    return jnp.where(_box_mask(h, w, *cutout_boxes(rng, n, h, w, size)), 0.0, x)


def erasing_boxes(rng: jax.Array, n: int, h: int, w: int, scale: Sequence[float],
                  ratio: Sequence[float], attempts: int = 10):
    """Random Erasing's rectangles, drawn as torchvision draws them: area ``scale`` of the
    image, log-uniform aspect ``ratio``, the first of ``attempts`` tries that fits, at a
    uniform position. (top, left, bottom, right, found), each (N,)."""
    area_rng, ratio_rng, top_rng, left_rng = jax.random.split(rng, 4)
    area = h * w * jax.random.uniform(area_rng, (n, attempts), minval=scale[0],
                                      maxval=scale[1])
    aspect = jnp.exp(jax.random.uniform(ratio_rng, (n, attempts), minval=jnp.log(ratio[0]),
                                        maxval=jnp.log(ratio[1])))
    eh = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
    ew = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    fits = (eh < h) & (ew < w)
    first = jnp.argmax(fits, axis=1)[:, None]
    eh = jnp.take_along_axis(eh, first, 1)[:, 0]
    ew = jnp.take_along_axis(ew, first, 1)[:, 0]
    top = jnp.floor(jax.random.uniform(top_rng, (n,)) * (h - eh + 1)).astype(jnp.int32)
    left = jnp.floor(jax.random.uniform(left_rng, (n,)) * (w - ew + 1)).astype(jnp.int32)
    return top, left, top + eh, left + ew, fits.any(axis=1)


def random_erasing(rng: jax.Array, x: jnp.ndarray, prob: float, scale: Sequence[float],
                   ratio: Sequence[float]) -> jnp.ndarray:
    """Random Erasing (Zhong et al. 2020) on normalised images: with probability ``prob``
    one rectangle per image (``erasing_boxes``) gets random values, a standard normal
    per pixel and channel (the paper's random fill; torchvision's ``value="random"``)."""
    if prob <= 0:
        return x
    box_rng, apply_rng, fill_rng = jax.random.split(rng, 3)
    n, h, w, _ = x.shape
    top, left, bottom, right, found = erasing_boxes(box_rng, n, h, w, scale, ratio)
    erase = found & jax.random.bernoulli(apply_rng, prob, (n,))
    mask = _box_mask(h, w, top, left, bottom, right) & erase[:, None, None, None]
    return jnp.where(mask, jax.random.normal(fill_rng, x.shape, x.dtype), x)
