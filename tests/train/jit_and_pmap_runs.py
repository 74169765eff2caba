"""Trains one tiny config under jit and pmap (with synced and per-device BatchNorm
statistics) on 8 virtual CPU devices; writes each run's per-step loss sums and final
state to OUT/<mode>_<sync|ghost>.npz. Run by tests/train/test_parallel.py in its own process
(the in-process tests have 2 devices).

    python tests/train/jit_and_pmap_runs.py OUT
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

from resnet_flax.config import default_config  # noqa: E402
from resnet_flax.data import pipeline, sources  # noqa: E402
from resnet_flax.run.train_loop import Trainer  # noqa: E402


def split(n: int, seed: int) -> pipeline.Split:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.int32)
    images = rng.integers(0, 40, (n, 28, 28, 1)) + 20 * labels[:, None, None, None]
    return pipeline.Split(images.astype(np.uint8), labels)


def config(parallelism: str, sync: bool):
    """BatchNorm, dropout, crop + flip, EMA and label smoothing all on; lr 1e-4, so that
    the two modes' rounding cannot grow into different weights (test_parallel)."""
    c = default_config()
    c.update(parallelism=parallelism, sync_batch_stats=sync, batch_size=32,
             eval_batch_size=16, num_epochs=1, crop_padding=2, random_flip=True,
             ema_decay=0.9, label_smoothing=0.1, lr=1e-4, progress_bar=False)
    c.model_options.width_multiplier = 0.25
    c.model_options.dropout_rate = 0.3
    return c


def run(parallelism: str, sync: bool) -> dict:
    trainer = Trainer(config(parallelism, sync), sources.Device(split(96, 0), split(40, 1)))
    losses = []
    trainer.train_steps(0, 0, lambda step, sums: losses.append(float(sums["loss_sum"])))
    state = jax.device_get(trainer.state)
    flat = ocp.tree.to_flat_dict({"params": state.params, "batch_stats": state.batch_stats,
                                  "ema": state.ema, "opt_state": state.opt_state}, sep="/")
    return {"losses": np.asarray(losses), **trainer.evaluate(), **flat}


def main(out: str) -> None:
    assert jax.device_count() == 8, jax.devices()
    for parallelism in ("jit", "pmap"):
        for sync in (True, False):
            name = f"{parallelism}_{'sync' if sync else 'ghost'}"
            np.savez(os.path.join(out, name), **run(parallelism, sync))


if __name__ == "__main__":
    main(sys.argv[1])
