"""Several train steps per dispatch: the one train step in a compiled loop over a chunk
of the epoch's steps (``config.steps_per_dispatch``, device input). The host's work per
step (a dispatch, an index transfer) is then paid once a chunk: what bounds small nets on
a GPU. The loop trains bit for bit as the step-by-step one (tests/train/test_dispatch.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def chunk_of(train_step, batch, cfg):
    """``(state, sums, (images, labels, columns), length, key) -> (state, sums)``: the
    train step on each of the first ``length`` columns of indices in turn, in one
    compiled loop, its metrics added to ``sums`` as the step-by-step loop adds them."""
    def chunk(state, sums, data, length, key):
        images, labels, columns = data

        def one(i, carry):
            state, sums = carry
            state, metrics = train_step(state, batch((images, labels, columns[:, i])), key, cfg)
            return state, jax.tree.map(jnp.add, sums, metrics)

        return jax.lax.fori_loop(0, length, one, (state, sums))

    return chunk


def lengths(start: int, stop: int, most: int, checkpoint_every: int) -> list[int]:
    """Global steps ``start``..``stop`` cut into chunks of at most ``most`` steps that
    end at every multiple of ``checkpoint_every``."""
    cut = []
    while start < stop:
        length = min(most, stop - start, checkpoint_every - start % checkpoint_every)
        cut.append(length)
        start += length
    return cut
