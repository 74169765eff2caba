"""Augmentation and normalisation in JAX, run inside the jitted train step.

Operates on uint8 NHWC batches so the dataset can live on the device as
uint8 and never round-trips through the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp


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
