"""Classify image files with a trained run, or with pretrained ImageNet weights.

    python -m resnet_flax.predict --workdir runs/fm_cpu shirt.png photos/ [--top-k 3]
        [--checkpoint latest|best|STEP] [--json]
    python -m resnet_flax.predict --weights resnet50.tv2_in1k photo.jpg

``--weights`` names pretrained weights (``resnet_flax.pretrained``: a known name, a hub
id, or a ``.safetensors``/``.pth`` file with ``--model``); each image gets the weights'
own evaluation transform (resize, centre crop, ImageNet normalisation) and ImageNet's
class names.

The model, dataset and evaluation settings (EMA, flip TTA) are the workdir's own
(``config.json``); the checkpoint is restored read-only. Each PNG/JPEG/... file of
any size and mode is converted to the dataset's channels (grayscale for MNIST and
Fashion-MNIST, RGB for CIFAR) by the rule a dataset build follows (``data/images.py``:
16-bit grey scaled, transparency composited on black) and resized to its
image size with bilinear filtering, nothing else: Fashion-MNIST's pictures are light
items on a black background, and a photo that is not will be misread. A folder
argument classifies every image file in it (not its subfolders). An unreadable file
gets one ``error:`` line and the others go on; the exit status is then 1.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import sys

import numpy as np

from resnet_flax import cli
from resnet_flax.cli import setup

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def parse_args(argv=None):
    p = cli.ArgumentParser(prog="python -m resnet_flax.predict",
                           description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="image files, or folders of them")
    cli.add_model_source(p)
    p.add_argument("--top-k", type=int, default=3, help="classes to print per image")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    args = p.parse_args(argv)
    problem = cli.checkpoint_choice_problem(args.checkpoint)
    if problem:
        p.error(problem)
    if args.top_k < 1:
        p.error(f"--top-k {args.top_k}: must be >= 1")
    return args


def image_files(paths: list[str]) -> list[pathlib.Path]:
    """The files named, and the image files in the folders named, in the order given."""
    out = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            out += sorted(p for p in path.iterdir()
                          if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(path)
    return out


def read_image(path: pathlib.Path, shape: tuple[int | None, int | None, int],
               view=None) -> np.ndarray:
    """``path`` as a uint8 (H, W, C) array in the dataset's ``shape`` or as ``view(PIL
    image in the shape's mode)`` returns it (``centre_crop_view``: the stream input's
    evaluation crop, on images of any size); OSError/ValueError if it is not a readable
    image."""
    from PIL import Image

    h, w, c = shape
    try:
        with Image.open(path) as image:
            image.load()
            return _as_array(image, (h, w, c), view)
    except Image.DecompressionBombError as e:  # Refused before it fills the memory.
        raise ValueError(f"too large to read safely ({e})") from None


def centre_crop_view(size: int, fraction: float):
    """A ``read_image`` view: the stream input's evaluation crop of the image."""
    from resnet_flax.data import crops

    def view(image) -> np.ndarray:
        channels = len(image.getbands())
        pixels = np.asarray(image, np.uint8).reshape(image.height, image.width, channels)
        return crops.centre_crop(pixels, size, fraction)

    return view


def _as_array(image, shape: tuple[int | None, int | None, int], view=None) -> np.ndarray:
    from PIL import Image

    from resnet_flax.data import images

    h, w, c = shape
    image = images.convert(image, c)  # The rule every dataset build and reader follows.
    if view is not None:
        return view(image)
    if image.size != (w, h):
        image = image.resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(image, np.uint8).reshape(h, w, c)


def classify(config, state, images: np.ndarray) -> np.ndarray:
    """Softmax probabilities of each image, computed as the run's evaluation does."""
    import jax

    from resnet_flax.train import steps

    # One batch on one device: any number of images, whatever the run's eval batch size.
    logits = steps.forward(steps.step_config(config), config.ema_decay > 0)(state, images)
    return np.asarray(jax.nn.softmax(logits, -1))


def report(files, probabilities, names, top_k: int, as_json: bool) -> None:
    for path, probs in zip(files, probabilities):
        top = np.argsort(-probs)[:top_k]
        if as_json:
            print(json.dumps({"file": str(path), "top": [
                {"class": names[i], "index": int(i), "probability": float(probs[i])}
                for i in top]}))
        else:
            print(f"{path}: " + ", ".join(f"{names[i]} {probs[i]:.3f}" for i in top))


def read_all(paths: list[str], read) -> tuple[list, list, int]:
    """(files read, their arrays, how many failed): one ``error:`` line per bad file."""
    files, images, failed = [], [], 0
    for path in image_files(paths):
        try:
            images.append(read(path))
            files.append(path)
        except (OSError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError.
            failed += 1
            print(f"error: {path}: not a readable image ({type(e).__name__}: "
                  f"{str(e).splitlines()[0] if str(e) else 'empty'})", file=sys.stderr)
    return files, images, failed


def from_workdir(args):
    """(read one file, classify a batch, class names) of the run in ``--workdir``."""
    from resnet_flax.config import ConfigError
    from resnet_flax.data import datasets, sources, tfds_source
    from resnet_flax.run import evaluate
    from resnet_flax.workdir import resume_guard
    from resnet_flax.workdir.checkpoint import CheckpointError

    workdir = pathlib.Path(args.workdir)
    try:
        config = resume_guard.load(workdir)
        state = evaluate.restore(config, workdir, args.checkpoint)
        names = tfds_source.class_names(config.dataset, config.data_dir or None,
                                        allow_download=False)
    except (ConfigError, CheckpointError, tfds_source.DatasetUnavailable) as e:
        cli.fail(str(e))
    shape = datasets.get(config.dataset, config.data_dir or None).image_shape
    view = (centre_crop_view(sources.eval_crop_size(config), config.eval_crop_fraction)
            if config.crop != "none" else None)
    return (functools.partial(read_image, shape=shape, view=view),
            functools.partial(classify, config, state), names)


def from_weights(args):
    """(read one file, classify a batch, class names) of pretrained ``--weights``."""
    import jax

    from resnet_flax import pretrained
    from resnet_flax.pretrained import transform

    # huggingface_hub's retry notices, five when there is no network, would bury the one
    # error line; it re-reads this each time it sets up a logger (a user's choice stays).
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    try:
        loaded = pretrained.load(args.weights, model=args.model)
    except pretrained.PretrainedError as e:
        cli.fail(str(e))
    model, variables = loaded
    weights = loaded.weights
    apply = jax.jit(lambda x: jax.nn.softmax(model.apply(variables, x, train=False), -1))
    view = functools.partial(transform.eval_view, weights=weights)
    names = loaded.class_names or [str(i) for i in range(model.num_classes)]
    # A grey dataset's weights take one channel (their mean and std have one entry).
    return (functools.partial(read_image, shape=(None, None, len(weights.mean)), view=view),
            lambda images: np.asarray(apply(transform.normalise(images, weights))), names)


def main(argv=None) -> int:
    args = parse_args(argv)
    with cli.stops_on_signals("predict"):
        setup.start()
        read, classify_batch, names = (from_weights if args.weights else from_workdir)(args)
        files, images, failed = read_all(args.images, read)
        if images:
            report(files, classify_batch(np.stack(images)), names, args.top_k, args.json)
    if not images and not failed:
        cli.fail(f"no image files in {' '.join(args.images)} ({', '.join(IMAGE_SUFFIXES)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
