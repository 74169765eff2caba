"""How fast the train step resizes a raw store's crop boxes (``resnet_flax/data/canvas.py``)
on this machine's device: a batch of canvases, as the host cuts them from a ``raw:N``
store, resized to the crop size in one compiled call.

    python benchmarks/crop_resize.py                      # 256 boxes of a raw:256 store
    python benchmarks/crop_resize.py --batch 4 --size 32 --shorter 40

The canvases hold Inception boxes (torchvision's draw) of random images whose shorter
side is --shorter and longer side up to 4/3 of it. Prints one JSON line: images/s (median,
10th and 90th percentile of the timed calls), ms a call, compile seconds; and PIL's
resize of the same boxes on one host core, for comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np

from resnet_flax.data import canvas, crops


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=224, help="the crop size")
    p.add_argument("--shorter", type=int, default=256, help="the store's shorter side")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    return p.parse_args(argv)


def boxes(args, seed: int = 0) -> tuple[np.ndarray, list]:
    """(canvases, [(image, box's seed)]): a batch as the host cuts it, and what PIL would
    resize."""
    rng = np.random.default_rng(seed)
    side = canvas.side(args.shorter, args.size, crops.INCEPTION_RATIO)
    out = np.zeros((args.batch, side + 1, side, 3), np.uint8)
    cut = []
    for row in range(args.batch):
        long = int(rng.integers(args.shorter, args.shorter * 4 // 3 + 1))
        h, w = (args.shorter, long) if row % 2 else (long, args.shorter)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        box = crops.inception_box(np.random.default_rng([seed, row]), h, w)
        canvas.place(out[row], image, box, args.size)
        cut.append((image, [seed, row]))
    return out, cut


def pil_rate(cut: list, size: int) -> float:
    """images/s of PIL's resize of the same boxes, one after another (one host core)."""
    tic = time.perf_counter()
    for image, seed in cut:  # The same box: drawn from the same seed.
        crops.random_resized_crop(np.random.default_rng(seed), image, size)
    return len(cut) / (time.perf_counter() - tic)


def measure(args) -> dict:
    batch, cut = boxes(args)
    on_device = jax.device_put(batch)
    resize = jax.jit(canvas.resized, static_argnums=1)
    tic = time.perf_counter()
    jax.block_until_ready(resize(on_device, args.size))
    compile_s = time.perf_counter() - tic
    for _ in range(args.warmup):
        jax.block_until_ready(resize(on_device, args.size))
    seconds = []
    for _ in range(args.steps):
        tic = time.perf_counter()
        jax.block_until_ready(resize(on_device, args.size))
        seconds.append(time.perf_counter() - tic)
    rates = sorted(args.batch / s for s in seconds)
    return {"images_per_sec": statistics.median(rates),
            "images_per_sec_p10": rates[len(rates) // 10],
            "images_per_sec_p90": rates[(9 * len(rates)) // 10],
            "step_ms": 1000 * statistics.median(seconds), "compile_s": compile_s,
            "batch": args.batch, "input_shape": list(batch.shape[1:]),
            "pil_images_per_sec_one_core": pil_rate(cut, args.size),
            "device": jax.devices()[0].device_kind}


def main(argv=None) -> None:
    print(json.dumps(measure(parse_args(argv))))


if __name__ == "__main__":
    main()
