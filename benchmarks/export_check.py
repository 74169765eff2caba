"""Export time, artefact sizes and each format's agreement with the model.

    python benchmarks/export_check.py --model resnet50              # random-init weights
    python benchmarks/export_check.py --workdir runs/fm_cpu         # a run, on its test split

With ``--model``: the median time of ``--repeats`` exports of every format (ImageNet
normalisation inside), the files' sizes, and each format's largest relative difference
from the model on random images. With ``--workdir``: the run's checkpoint exported once
and every format's logits on the run's whole test split (read as its evaluation reads
it) against the evaluation's own, with top-1 agreement. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from resnet_flax import models
from resnet_flax.export import source, stablehlo, writer
from resnet_flax.pretrained.catalogue import IMAGENET_MEAN, IMAGENET_STD


def random_exportable(name: str) -> source.Exportable:
    model = models.create(name)
    h, w, c = models.spec(name).input_shape
    variables = jax.device_get(model.init(jax.random.key(0), jnp.zeros((1, h, w, c)),
                                          train=False))
    logits = functools.partial(source.normalised_logits, model.apply, mean=IMAGENET_MEAN,
                               std=IMAGENET_STD)
    return source.Exportable(name, {}, model, variables, logits, (h, w, c), IMAGENET_MEAN,
                             IMAGENET_STD, tuple(str(i) for i in range(model.num_classes)),
                             f"random-init {name}")


def sizes(folder: pathlib.Path) -> dict[str, float]:
    """MB of each format's files."""
    mb = lambda p: p.stat().st_size / 1e6  # noqa: E731
    return {"stablehlo": mb(folder / stablehlo.FILE), "onnx": mb(folder / "model.onnx"),
            "weights": sum(mb(p) for p in (folder / "weights").iterdir())}


def time_exports(exportable, repeats: int) -> None:
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            start = time.perf_counter()
            writer.export(exportable, f"{tmp}/{i}")
            seconds.append(time.perf_counter() - start)
        described = json.loads(pathlib.Path(f"{tmp}/0/export.json").read_text())
        size = sizes(pathlib.Path(f"{tmp}/0"))
    print(f"| {exportable.model_name} | all formats, checked | {statistics.median(seconds):.1f} s "
          f"(median of {repeats}: {', '.join(f'{s:.1f}' for s in seconds)}) |")
    print("\n| format | MB | largest relative difference |\n|---|---|---|")
    for fmt, difference in described["largest_relative_difference"].items():
        print(f"| {fmt} | {size[fmt]:.1f} | {difference:.1e} |")


def compare_on_test_split(workdir: str) -> None:
    from resnet_flax import pretrained
    from resnet_flax.data import datasets, tfds_source
    from resnet_flax.run import evaluate
    from resnet_flax.workdir import resume_guard

    config = resume_guard.load(pathlib.Path(workdir))
    spec = datasets.get(config.dataset, config.data_dir or None)
    images, labels = tfds_source.load_split(config.dataset, spec.test_split,
                                            data_dir=config.data_dir or None,
                                            allow_download=False)
    state = evaluate.restore(config, pathlib.Path(workdir))
    expected = evaluate.logits_of(config, state, images)
    exportable = source.from_workdir(workdir)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        written = writer.export(exportable, f"{tmp}/out")
        took = time.perf_counter() - start
        found = {"stablehlo": np.asarray(stablehlo.load(written["stablehlo"]).call(images)),
                 "onnx": writer.onnxruntime_logits(written["onnx"], images)}
        _, variables = pretrained.load(str(written["weights"]))
        found["weights"] = np.asarray(jax.jit(exportable.logits)(variables, images))
    print(f"{workdir}: {len(images)} test images ({config.dataset}), exported in {took:.1f} s;"
          f" the run's accuracy {np.mean(expected.argmax(-1) == labels):.4f}\n")
    print("| format | largest relative difference | top-1 agreement |\n|---|---|---|")
    for fmt, logits in found.items():
        difference = np.max(np.abs(logits - expected)) / np.max(np.abs(expected))
        agree = np.mean(logits.argmax(-1) == expected.argmax(-1))
        print(f"| {fmt} | {difference:.1e} | {agree:.4f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a registry model, exported with random-init weights")
    p.add_argument("--workdir", help="a run, compared on its test split")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.workdir:
        compare_on_test_split(args.workdir)
    if args.model:
        time_exports(random_exportable(args.model), args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
