"""Is training several seeds at once (``jax.vmap`` over the seed axis) faster than one
after another? Answered on this machine, for the experiments' seed runs.

    python benchmarks/vmap_seeds.py --models resnet20,plain_resnet20 --seeds 3 --rounds 5

For each model, ``--seeds`` train states (one per seed) take the project's
``steps.train_step`` (SGD momentum, crop + flip on the device, as the experiments'
He et al. recipe) on a Fashion-MNIST-shaped on-device split of random images:

- ``sequential``: one jitted step per seed, called once per seed per round step;
- ``vmap``: one jitted ``jax.vmap`` of the same step over the stacked states, each seed
  with its own batch indices and key.

Rounds interleave the two (``--steps`` steps each) and the figures are the medians of
the rounds' images/s, all seeds counted. Before timing, one step of each is compared
leaf for leaf (the vmapped step must compute the same update).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from resnet_flax.cli import setup as process_setup

process_setup.start(1)  # Every command's set-up (one CPU device), before JAX starts.

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from resnet_flax.run.assemble import build  # noqa: E402
from resnet_flax.speed.throughput import recipe  # noqa: E402
from resnet_flax.train import steps  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet20", help="comma-separated model names")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round and mode")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dataset-size", type=int, default=5000)
    return p.parse_args(argv)


def setup(name: str, args):
    """(cfg, stacked states, images, labels) for ``args.seeds`` seeds of model ``name``."""
    cfg = steps.StepConfig(num_classes=10, mean=(0.286,), std=(0.353,), crop_padding=2,
                           random_flip=True)
    states = [build(recipe(name, s, {}, weight_decay=1e-4), 10, (28, 28, 1)).state
              for s in range(args.seeds)]
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (args.dataset_size, 28, 28, 1), np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, (args.dataset_size,), np.int32))
    return cfg, states, images, labels


def batch_inputs(args, step: int):
    """(S, batch) indices and S raw keys: each seed's own draw for ``step``."""
    rng = np.random.default_rng(step)
    idx = rng.integers(0, args.dataset_size, (args.seeds, args.batch)).astype(np.int32)
    keys = jnp.stack([jax.random.key_data(jax.random.key(1000 * s + step))
                      for s in range(args.seeds)])
    return jnp.asarray(idx), keys


def max_difference(a, b) -> float:
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def bench(name: str, args) -> dict:
    cfg, states, images, labels = setup(name, args)
    def step(st, i, k):  # As the device input runs it: its rows gathered in the step.
        return steps.train_step(st, (images[i], labels[i]), k, cfg)

    one, many = jax.jit(step), jax.jit(jax.vmap(step))
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)

    idx, keys = batch_inputs(args, 0)
    seq = [one(st, idx[s], keys[s])[0] for s, st in enumerate(states)]
    vm = many(stacked, idx, keys)[0]
    diff = max_difference(jax.tree.map(lambda *xs: jnp.stack(xs), *seq).params, vm.params)

    def sequential(step):
        nonlocal states
        i, k = batch_inputs(args, step)
        states = [one(st, i[s], k[s])[0] for s, st in enumerate(states)]
        return states

    def vmapped(step):
        nonlocal stacked
        i, k = batch_inputs(args, step)
        stacked = many(stacked, i, k)[0]
        return stacked

    figures = {"sequential": [], "vmap": []}
    for r in range(args.rounds + 1):  # Round 0 warms both up.
        for mode, fn in (("sequential", sequential), ("vmap", vmapped)):
            tic = time.perf_counter()
            for s in range(args.steps):
                out = fn(r * args.steps + s)
            jax.block_until_ready(out)
            if r:
                figures[mode].append(args.seeds * args.batch * args.steps
                                     / (time.perf_counter() - tic))
    seq_ips, vm_ips = (statistics.median(figures[m]) for m in ("sequential", "vmap"))
    return {"model": name, "seeds": args.seeds, "batch": args.batch,
            "sequential_img_s": round(seq_ips, 1), "vmap_img_s": round(vm_ips, 1),
            "speedup": round(vm_ips / seq_ips, 3),
            "sequential_all": [round(x, 1) for x in figures["sequential"]],
            "vmap_all": [round(x, 1) for x in figures["vmap"]],
            "max_param_difference_after_one_step": diff}


def main(argv=None):
    args = parse_args(argv)
    for name in args.models.split(","):
        print(json.dumps(bench(name, args)), flush=True)


if __name__ == "__main__":
    main()
