"""How fast the stream input reads, decodes and crops images, beside a plain loop doing
the same work, on one pinned core and on every core.

    python benchmarks/input_speed.py                          # generated ImageNet-like JPEGs
    python benchmarks/input_speed.py --folder /data/flowers   # your own images, too
    python benchmarks/input_speed.py --stores raw:256,jpeg:256 --step resnet18
    python benchmarks/input_speed.py --policies ta_wide,ra,rand-m7-mstd0.5-inc1

The generated set has ILSVRC2012's statistics: shorter side 300-500 px, aspect up to 4:3,
JPEG quality 90, ~110 KB each, 10 classes; it is built as a folder dataset (once) under
--data_dir, and so is --folder. For each folder, each core count
(``1``: this process and its threads pinned to one core; ``all``: every core) and each
view (``train``: Inception's random-resized crop to --size with torchvision's draw;
``eval``: resize to size/0.875 and the centre --size), both over the training
images, the images/s of

- ``loop``: the plain reference: PIL opens each file, decodes it in full, crops and
  resizes (bilinear) to the same box, into an array; on ``all`` cores, one process per
  core over its share of the files;
- ``stream``: the stream input of training (``config.input=stream``, Grain over the
  built ``array_record``, ``input_workers=0``: its reader threads), one epoch of batches
  of --batch put on the device (its read-ahead ends with the epoch);
- ``stream <store>``: the same from a pre-resized store (``--stores raw:256``: raw
  pixels, shorter side 256; ``jpeg:256``: quality-90 JPEG), train view only; a raw
  store twice, its crops resized by PIL on the host and, ``, boxes``, only cut on the
  host for the step to resize (``config.crop_resize=device``), with a row for that
  resize alone on this machine's device.

``--policies`` adds ``train stream, <policy>``: the train view with each augmentation
policy (``config.auto_augment``; timm's with its random interpolation, torchvision's
bilinear) on every crop, beside the same view without.

``--step MODEL`` adds the train step alone (a batch already on the device) and input +
step as training runs them. Rounds are interleaved (every row once per round, after a
warm-up round); it prints a table of medians and one JSON line per row with every round.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import statistics
import time

from resnet_flax.cli import setup as process_setup

process_setup.start(1)  # Every command's set-up (one CPU device), before JAX starts.

import jax  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from resnet_flax.config import default_config  # noqa: E402
from resnet_flax.data import canvas, crops, datasets, folders, sources, stream  # noqa: E402
from resnet_flax.run import train_loop  # noqa: E402

CLASSES = 10


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", action="append", default=[],
                   help="a folder of class subfolders to measure too (repeatable)")
    p.add_argument("--images", type=int, default=640, help="generated training images")
    p.add_argument("--data_dir", default="/tmp/input_speed")
    p.add_argument("--cores", default="1,all", help="comma-separated: 1 and/or all")
    p.add_argument("--stores", default="", help="pre-resized stores, e.g. raw:256,jpeg:256")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--step", default="", help="a model: add step and input+step rows")
    p.add_argument("--policies", default="", help="augmentation policies to time, e.g. "
                   "ta_wide,ra,rand-m7-mstd0.5-inc1")
    p.add_argument("--step-batches", type=int, default=4, help="batches per step round")
    p.add_argument("--dtype", default="float32", help="the step's compute dtype (bfloat16)")
    p.add_argument("--workers", type=int, default=0,
                   help="input+step with this many Grain worker processes (a GPU host): "
                        "its rounds then run back to back on one iterator, after the rest")
    return p.parse_args(argv)


def _layer(rng, h: int, w: int, cell: int, amplitude: float) -> np.ndarray:
    """Random colours on a grid of ``cell`` pixels, bilinearly smoothed, centred on 0."""
    grid = rng.integers(0, 256, (h // cell + 2, w // cell + 2, 3)).astype(np.uint8)
    size = ((w // cell + 2) * cell, (h // cell + 2) * cell)
    up = np.asarray(Image.fromarray(grid).resize(size, Image.BILINEAR), np.float32)[:h, :w]
    return (up / 255 - 0.5) * amplitude


def generate(root: pathlib.Path, count: int, seed: int = 0,
             shorter: tuple[int, int] = (300, 500)) -> pathlib.Path:
    """``count`` training and ``count // 4`` validation JPEGs of ILSVRC2012's sizes and
    file sizes (shapes at three scales plus grain: ~110 KB at quality 90), or of another
    range of ``shorter`` sides."""
    folder = root / f"imagenet_like_{count}" if shorter == (300, 500) else \
        root / f"shorter_{shorter[0]}_{shorter[1]}_{count}"
    if (folder / "complete").exists():
        return folder
    rng = np.random.default_rng(seed)
    for split, n in (("train", count), ("val", max(count // 4, CLASSES))):
        for i in range(n):
            short = int(rng.integers(shorter[0], shorter[1] + 1))
            long = int(short * rng.uniform(1.0, 4 / 3))
            h, w = (short, long) if i % 2 else (long, short)
            pixels = (128 + _layer(rng, h, w, 48, 200) + _layer(rng, h, w, 4, 90)
                      + rng.normal(0, 20, (h, w, 3)))
            path = folder / split / f"class_{i % CLASSES}" / f"{i:06}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    (folder / "complete").touch()
    return folder


def built(folder: pathlib.Path, data_dir: pathlib.Path, store: folders.Store) -> str:
    """The dataset name of ``folder``, built (once) into ``data_dir`` with ``store``."""
    name = f"{datasets.FOLDER_PREFIX}{folder}"
    if not (datasets.folder_store(name, str(data_dir)) / datasets.FOLDER_RECORD).exists():
        folders.build(name, str(data_dir), store=store)
    return name


def split_files(name: str, data_dir: pathlib.Path) -> dict[str, list[str]]:
    """The files of each split of a built folder, as its build chose them."""
    record = datasets.folder_record(name, str(data_dir))
    root, skipped = pathlib.Path(record["source"]), {p for p, _ in record["skipped"]}
    rule = record["split_rule"]
    if "test_folder" in rule:
        trees = {"train": root / "train", "test": root / rule["test_folder"]}
        return {split: [p for p, _ in folders.class_files(tree, record["classes"])
                        if p not in skipped] for split, tree in trees.items()}
    test = set(record["test_files"])
    every = [p for p, _ in folders.class_files(root, record["classes"]) if p not in skipped]
    return {"train": [p for p in every if p not in test], "test": sorted(test)}


def loop_views(paths: list[str], view: str, size: int, seed: int = 0) -> int:
    """The plain reference: open, decode in full, crop, resize, to an array."""
    rng = np.random.default_rng(seed)
    for path in paths:
        with Image.open(path) as image:
            image = image if image.mode == "RGB" else image.convert("RGB")
            if view == "train":
                top, left, h, w = crops.inception_box(rng, image.height, image.width)
                out = image.resize((size, size), Image.BILINEAR,
                                   box=(left, top, left + w, top + h))
            else:
                h, w = crops.resize_shorter(image.height, image.width, round(size / 0.875))
                out = image.resize((w, h), Image.BILINEAR)
                top, left = round((h - size) / 2), round((w - size) / 2)
                out = out.crop((left, top, left + size, top + size))
            np.asarray(out)
    return len(paths)


def trainer_for(name: str, data_dir: pathlib.Path, args, step: bool = False,
                crop_resize: str = "auto", policy: str = "") -> train_loop.Trainer:
    """The stream input of training on ``name`` (``step``: with its compiled step, on
    --step-batches batches an epoch)."""
    c = default_config()
    c.update(dataset=name, data_dir=str(data_dir), allow_download=False, input="stream",
             crop_resize=crop_resize,
             crop="inception", crop_size=args.size, random_flip=True,
             model=args.step or "resnet18", normalization="imagenet", batch_size=args.batch,
             eval_batch_size=args.batch, progress_bar=False,
             train_subset=args.step_batches * args.batch if step else 0,
             input_workers=args.workers if step else 0, auto_augment=policy,
             auto_augment_interpolation="random" if policy.startswith("rand-") else "bilinear")
    c.model_options.dtype = args.dtype
    trainer = train_loop.Trainer(c, sources.open_source(c))
    if step:
        trainer.compile()
    return trainer


def epoch_batches(trainer, epoch: int):
    """Training's stream of batches (the same dataset, reading threads and device
    read-ahead) bounded to one epoch: training's run-long iterator would read on into
    the next epoch, in the next row's time."""
    source, c = trainer.source, trainer.config
    steps = trainer.steps_per_epoch
    dataset = stream.train_dataset(source._train_source, source._examples, c.seed,
                                   c.num_epochs, c.batch_size, source._rows, source.crop)
    host = stream.batches(dataset[epoch * steps:(epoch + 1) * steps], 0)
    return (batch["image"] for batch, _ in sources._ahead(host, source.mode.put_rows))


def eval_batches(trainer):
    """Evaluation's stream of batches (its dataset, reading threads and device
    read-ahead) over the training images: four times the validation split's batches,
    so a round is not mostly the start of its threads and the wait for its last batch."""
    source, c = trainer.source, trainer.config
    dataset = stream.eval_dataset(source._train_source, source._examples,
                                  c.eval_batch_size, source._eval_rows, source.crop)
    host = stream.batches(dataset, 0)
    return (batch["image"] for batch, _ in sources._ahead(host, source.mode.put_rows))


def time_stream(trainer, view: str, epoch: int) -> float:
    """images/s of one epoch of ``view`` batches, put on the device."""
    tic, count = time.perf_counter(), 0
    for images in epoch_batches(trainer, epoch) if view == "train" else eval_batches(trainer):
        count += jax.block_until_ready(images).shape[0]
    return count / (time.perf_counter() - tic)


def time_resize_in_step(trainer, batches: int = 4) -> float:
    """images/s of the step's resize of a raw store's crop boxes (``data/canvas.py``), on
    this machine's device, one batch after another."""
    boxes = next(epoch_batches(trainer, 0))
    resize = jax.jit(canvas.resized, static_argnums=1)
    jax.block_until_ready(resize(boxes, trainer.config.crop_size))
    tic = time.perf_counter()
    for _ in range(batches):
        out = resize(boxes, trainer.config.crop_size)
    jax.block_until_ready(out)
    return batches * boxes.shape[0] / (time.perf_counter() - tic)


def time_loop(pool, paths: list[str], view: str, size: int, workers: int, seed: int) -> float:
    tic = time.perf_counter()
    if pool is None:
        count = loop_views(paths, view, size, seed)
    else:
        shares = [paths[k::workers] for k in range(workers)]
        count = sum(pool.starmap(loop_views, [(s, view, size, seed + k)
                                              for k, s in enumerate(shares)]))
    return count / (time.perf_counter() - tic)


def time_step(trainer, batches: int) -> float:
    batch = trainer.source.example_train_args()
    tic = time.perf_counter()
    for _ in range(batches):
        trainer._state, _ = trainer._train_step(trainer._state, batch, trainer.step_key)
    jax.block_until_ready(trainer._state)
    return batches * trainer.config.batch_size / (time.perf_counter() - tic)


def time_input_and_step(trainer, epoch: int) -> float:
    """images/s of an epoch of train steps on the stream (workers: on the run's one
    iterator, as training reads; in-process: a fresh one, nothing read ahead)."""
    tic = time.perf_counter()
    sums = trainer.train_steps(epoch, 0)
    jax.block_until_ready(trainer._state)
    if not trainer.config.input_workers:
        trainer.source.close()
    return float(sums["count"]) / (time.perf_counter() - tic)


def rows_for(args, data_dir: pathlib.Path) -> dict:
    """{(folder label, row name): a callable of the round number giving images/s}."""
    workers = len(os.sched_getaffinity(0))
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    rows = {}
    folder_list = [("generated", generate(data_dir, args.images))]
    folder_list += [(f, pathlib.Path(f).expanduser().resolve()) for f in args.folder]
    for label, folder in folder_list:
        name = built(folder, data_dir / "original", folders.Store())
        files = split_files(name, data_dir / "original")
        trainer = trainer_for(name, data_dir / "original", args)
        for view in ("train", "eval"):  # Both over the training images (eval_batches).
            rows[label, f"{view} loop"] = lambda r, p=files["train"], v=view: time_loop(
                pool, p, v, args.size, workers, r)
            rows[label, f"{view} stream"] = lambda r, t=trainer, v=view: time_stream(t, v, r)
        for policy in filter(None, args.policies.split(",")):
            augmenting = trainer_for(name, data_dir / "original", args, policy=policy)
            rows[label, f"train stream, {policy}"] = lambda r, t=augmenting: time_stream(
                t, "train", r)
        for store in filter(None, args.stores.split(",")):
            kind, shorter = store.split(":")
            stored = built(folder, data_dir / store.replace(":", ""),
                           folders.Store(kind, int(shorter)))
            where = data_dir / store.replace(":", "")
            for resize in ("host", "device") if kind == "raw" else ("host",):
                other = trainer_for(stored, where, args, crop_resize=resize)
                row = f"train stream {store}" + (", boxes" if resize == "device" else "")
                rows[label, row] = lambda r, t=other: time_stream(t, "train", r)
            if kind == "raw":
                rows[label, f"{store} boxes resized in the step"] = \
                    lambda r, t=other: time_resize_in_step(t)
        if args.step:
            stepped = trainer_for(name, data_dir / "original", args, step=True)
            rows[label, "step alone"] = lambda r, t=stepped: time_step(t, args.step_batches)
            rows[label, "input+step"] = lambda r, t=stepped: time_input_and_step(t, r)
    return rows


def measure(args) -> list[dict]:
    """Every row once per round, after a warm-up round; one record per row."""
    cores = len(os.sched_getaffinity(0))
    rows = rows_for(args, pathlib.Path(args.data_dir))
    figures = {key: [] for key in rows}
    # Worker processes read ahead while other rows run: their rows go last, back to back.
    last = [k for k in rows if args.workers and k[1] == "input+step"]
    for group in ([k for k in rows if k not in last], last):
        for r in range(args.rounds + 1):
            for key in group:
                value = rows[key](r)
                if r:
                    figures[key].append(value)
    return [{"folder": label, "row": row, "cores": cores, "size": args.size,
             "img_s": round(statistics.median(values), 1),
             "all": [round(v, 1) for v in values]}
            for (label, row), values in figures.items()]


def table(records: list[dict]) -> str:
    """Markdown: a row per (folder, row), a column per core count, the stream's ratio to
    the loop of the same view beside it."""
    cores = sorted({r["cores"] for r in records})
    by = {(r["folder"], r["row"], r["cores"]): r["img_s"] for r in records}
    keys = list(dict.fromkeys((r["folder"], r["row"]) for r in records))
    head = " | ".join(f"{c} core{'s' * (c > 1)} | x loop" for c in cores)
    lines = [f"| folder | row | {head} |", "|---|---|" + "---|---|" * len(cores)]
    for folder, row in keys:
        cells = []
        for c in cores:
            value, ref = by.get((folder, row, c)), by.get((folder, f"{row.split()[0]} loop", c))
            ratio = f"{value / ref:.2f}" if value and ref and "loop" not in row else ""
            cells.append(f"{value:,.0f} | {ratio}" if value else " | ")
        lines.append(f"| {folder} | {row} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    settings = args.cores.split(",")
    if len(settings) == 1:  # Pinned before JAX starts its threads: all of them inherit it.
        if settings[0] != "all":
            os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:int(settings[0])]))
        records = measure(args)
    else:  # One process per core setting, so every thread it starts has that setting.
        import subprocess
        import sys

        records = []
        for setting in settings:
            argv_one = [a for a in (argv or sys.argv[1:])] + ["--cores", setting]
            out = subprocess.run([sys.executable, __file__, *argv_one], check=True,
                                 capture_output=True, text=True).stdout
            records += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for record in records:
        print(json.dumps(record))
    print(table(records))


if __name__ == "__main__":
    main()
