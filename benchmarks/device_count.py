"""Does the device count change a run? The same config and global batch trained on 1, 2
and 4 virtual CPU devices, against rounding's own reach: the 1-device run again from
initial weights moved by one unit in the last place, and jit against pmap on the same
2 devices.

    python benchmarks/device_count.py --steps 32 [--recipes sgd_lr_0.1,adam_lr_1e-3]

For each recipe, the relative difference ``|a - b| / |a|`` (2-norms, each part's float
leaves as one vector) after ``--steps`` steps of each run against the 1-device jit run:
parameters, BatchNorm statistics and the optimizer state. Crops,
flips and dropout are on. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"  # Before JAX starts.

import jax  # noqa: E402
import numpy as np  # noqa: E402

from resnet_flax.config import default_config  # noqa: E402
from resnet_flax.data import pipeline, sources  # noqa: E402
from resnet_flax.run.train_loop import Trainer  # noqa: E402
from resnet_flax.train import parallel  # noqa: E402

RECIPES = {
    "sgd_lr_1e-4": {"optimizer": "sgd", "momentum": 0.9, "lr": 1e-4},
    "sgd_lr_1e-3": {"optimizer": "sgd", "momentum": 0.9, "lr": 1e-3},
    "sgd_lr_0.01": {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01},
    "sgd_lr_0.1": {"optimizer": "sgd", "momentum": 0.9, "lr": 0.1},
    "adam_lr_1e-3": {"optimizer": "adam", "lr": 1e-3},
}


def split(n: int, seed: int) -> pipeline.Split:
    """Fashion-MNIST-shaped images whose brightness tells the class (a learnable task)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.int32)
    images = rng.integers(0, 40, (n, 28, 28, 1)) + 20 * labels[:, None, None, None]
    return pipeline.Split(images.astype(np.uint8), labels)


def config(recipe: dict, parallelism: str, batch: int):
    c = default_config()
    c.update(parallelism=parallelism, batch_size=batch, eval_batch_size=8, num_epochs=100,
             crop_padding=2, random_flip=True, progress_bar=False, **recipe)
    c.model_options.width_multiplier = 0.25
    c.model_options.dropout_rate = 0.1
    return c


def trained(recipe: dict, devices: int, steps: int, batch: int, parallelism: str = "jit",
            nudge: bool = False) -> dict:
    """The flat float state after ``steps`` steps on the first ``devices`` devices."""
    trainer = Trainer(config(recipe, parallelism, batch),
                      sources.Device(split(512, 0), split(16, 1)),
                      mesh=parallel.make_mesh(jax.devices()[:devices]))
    if nudge:  # One unit in the last place on every initial weight.
        state = jax.device_get(trainer.state)
        trainer.state = state.replace(params=jax.tree.map(
            lambda p: np.nextafter(p, np.inf, dtype=p.dtype), state.params))
    epoch, done = 0, 0
    while done < steps:
        for data in trainer.source.train_batches(epoch, 0):
            if done == steps:
                break
            trainer._state, _ = trainer._train_step(trainer._state, data, trainer.step_key)
            done += 1
        epoch += 1
    state = jax.device_get(trainer.state)
    parts = {"params": state.params, "batch_stats": state.batch_stats,
             "optimizer": state.opt_state}
    return {k: {jax.tree_util.keystr(p): np.asarray(x)
                for p, x in jax.tree_util.tree_leaves_with_path(v)
                if np.asarray(x).dtype.kind == "f"} for k, v in parts.items()}


def relative_gap(a: dict, b: dict) -> float:
    """``|a - b| / |a|`` of the leaves as one vector (a leaf near zero, a BatchNorm bias
    after a few steps, would make a per-leaf ratio meaningless)."""
    flat_a = np.concatenate([a[k].ravel() for k in sorted(a)])
    flat_b = np.concatenate([b[k].ravel() for k in sorted(a)])
    return float(np.linalg.norm(flat_a - flat_b) / np.linalg.norm(flat_a))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated: "
                   f"{', '.join(RECIPES)} (SGD with momentum 0.9, or Adam, at that lr)")
    p.add_argument("--json", action="store_true", help="a JSON line per row, no table")
    args = p.parse_args(argv)
    if not args.json:
        print(f"| recipe ({args.steps} steps, batch {args.batch}) | run against 1 device, "
              "jit | params | BatchNorm statistics | optimizer state |\n|---|---|---|---|---|")
    for name in args.recipes.split(","):
        recipe = RECIPES[name]
        base = trained(recipe, 1, args.steps, args.batch)
        others = {"2 devices": trained(recipe, 2, args.steps, args.batch),
                  "4 devices": trained(recipe, 4, args.steps, args.batch),
                  "1 device, weights nudged 1 ulp": trained(recipe, 1, args.steps, args.batch,
                                                            nudge=True),
                  "2 devices, pmap (against 2, jit)": None}
        pmap2 = trained(recipe, 2, args.steps, args.batch, parallelism="pmap")
        for label, other in others.items():
            reference = others["2 devices"] if other is None else base
            other = pmap2 if other is None else other
            gaps = [relative_gap(reference[k], other[k])
                    for k in ("params", "batch_stats", "optimizer")]
            if args.json:
                print(json.dumps({"recipe": name, "run": label, "gaps": gaps}), flush=True)
            else:
                print(f"| {name} | {label} | " + " | ".join(f"{g:.1e}" for g in gaps) + " |",
                      flush=True)


if __name__ == "__main__":
    sys.exit(main())
