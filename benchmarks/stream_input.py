"""How fast does the stream input (Grain over array_record, ``config.input=stream``) read,
decode and crop ImageNet-like JPEGs on this machine, alone and feeding a train step?

    python benchmarks/stream_input.py --images 384 --workers 0,1,2 --rounds 3

Writes a generated ``imagenette``-format TFDS dataset (needs TensorFlow, once) of
``--images`` JPEGs of ImageNet's typical sizes (shorter side 300-500 px, aspect
3:4-4:3, quality 90; ~110 KB each, as ILSVRC2012's), then, in interleaved rounds:

- ``input``: the training batches of one epoch (Inception crop to ``--size``, batch
  ``--batch``) read by ``--workers`` Grain processes and put on the device, no step;
  images/s after the first batch (worker start-up is reported apart);
- ``step``: ``--model``'s train step alone on one batch already on the device;
- ``input+step``: the two together, as training runs them (``Trainer.train_steps``).

Prints one JSON line per (workers, mode) with the median and every round's figure.
``--cores 1`` pins the run (and its workers) to one core: the input's rate per core,
from which BENCHMARKS.md works out the cores ResNet-50 at 3,000 images/s needs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import shutil
import statistics
import time

from resnet_flax.cli import setup as process_setup

process_setup.start(1)  # Every command's set-up (one CPU device), before JAX starts.

import jax  # noqa: E402
import numpy as np  # noqa: E402

from resnet_flax.config import default_config  # noqa: E402
from resnet_flax.data import sources  # noqa: E402
from resnet_flax.run import loop  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", default="/tmp/stream_bench_tfds")
    p.add_argument("--images", type=int, default=384)
    p.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--modes", default="input,step,input+step")
    p.add_argument("--cores", type=int, default=0,
                   help="> 0: run on this many cores only (workers inherit it)")
    return p.parse_args(argv)


def jpeg_size(image: np.ndarray) -> int:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.tell()


def write_dataset(data_dir: pathlib.Path, n: int) -> None:
    """ImageNet-sized smooth random images (noise compresses badly) as TFDS imagenette."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("imagenette", data_dir=str(data_dir))
    if builder.is_prepared() and builder.info.splits["train"].num_examples == n:
        return
    shutil.rmtree(builder.data_dir, ignore_errors=True)  # Another --images count.
    rng = np.random.default_rng(0)

    def examples(count):
        for i in range(count):
            short = int(rng.integers(300, 501))
            long = int(short * rng.uniform(1.0, 4 / 3))
            h, w = (short, long) if i % 2 else (long, short)
            coarse = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
            image = np.kron(coarse, np.ones((8, 8, 1), np.uint8))[:h, :w]
            image = np.clip(image + rng.integers(-12, 13, image.shape), 0, 255)
            yield i, {"image": image.astype(np.uint8), "label": i % 10}

    tfds.dataset_builders.store_as_tfds_dataset(
        "imagenette", str(builder.version), builder.info.features,
        {"train": list(examples(n)), "validation": list(examples(16))},
        config=builder.builder_config.name, data_dir=str(data_dir),
        file_format="array_record")


def trainer_for(args, workers: int) -> loop.Trainer:
    c = default_config()
    c.update(dataset="imagenette", data_dir=args.data_dir, allow_download=False,
             input="stream", input_workers=workers, crop="inception", crop_size=args.size,
             random_flip=True, model=args.model, normalization="imagenet",
             batch_size=args.batch, eval_batch_size=16, progress_bar=False)
    trainer = loop.Trainer(c, sources.open_source(c))
    trainer.compile()
    return trainer


def time_input(trainer, epoch: int) -> tuple[float, float]:
    """(seconds to the first batch, images/s over the whole epoch, start-up included:
    Grain reads ahead with threads, so the time to the first batch is not start-up
    alone)."""
    tic = time.perf_counter()
    batches = trainer.source.train_batches(epoch, 0)
    batch = next(batches)
    jax.block_until_ready(batch)
    first, count = time.perf_counter() - tic, batch[0].shape[0]
    for batch in batches:
        jax.block_until_ready(batch)
        count += batch[0].shape[0]
    return first, count / (time.perf_counter() - tic)


def time_step(trainer, steps: int) -> float:
    batch = trainer.source.example_train_args()
    tic = time.perf_counter()
    for _ in range(steps):
        trainer._state, _ = trainer._train_step(trainer._state, batch, trainer.step_key)
    jax.block_until_ready(trainer._state)
    return steps * trainer.config.batch_size / (time.perf_counter() - tic)


def time_input_and_step(trainer, epoch: int) -> float:
    tic = time.perf_counter()
    sums = trainer.train_steps(epoch, 0)
    jax.block_until_ready(trainer._state)
    return float(sums["count"]) / (time.perf_counter() - tic)


def main(argv=None):
    args = parse_args(argv)
    if args.cores:
        os.sched_setaffinity(0, set(range(args.cores)))
    write_dataset(pathlib.Path(args.data_dir), args.images)
    workers = [int(w) for w in args.workers.split(",")]
    modes = args.modes.split(",")
    trainers = {w: trainer_for(args, w) for w in workers}
    figures = {(w, m): [] for w in workers for m in modes}
    startup = {w: [] for w in workers}
    for r in range(args.rounds + 1):  # Round 0 warms up (page cache, compiled step).
        for w, trainer in trainers.items():
            results = {}
            if "input" in modes:
                first, results["input"] = time_input(trainer, r)
                startup[w].append(first)
            if "step" in modes:
                results["step"] = time_step(trainer, trainer.steps_per_epoch)
            if "input+step" in modes:
                results["input+step"] = time_input_and_step(trainer, r)
            for mode, value in results.items():
                if r:
                    figures[(w, mode)].append(value)
    jpeg_kb = np.mean([jpeg_size(trainers[workers[0]].source._train_source[i]["image"])
                       for i in range(16)]) / 1024
    for (w, mode), values in figures.items():
        print(json.dumps({"workers": w, "mode": mode, "model": args.model, "size": args.size,
                          "batch": args.batch, "cores": args.cores or os.cpu_count(),
                          "img_s": round(statistics.median(values), 1),
                          "all": [round(v, 1) for v in values],
                          "first_batch_s": round(statistics.median(startup[w][1:]), 2)
                          if startup[w][1:] else None, "jpeg_kb": round(float(jpeg_kb), 1)}))


if __name__ == "__main__":
    main()
