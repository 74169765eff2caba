"""Test set-up: two virtual CPU devices (so the sharded path is exercised) and a
tiny real TFDS dataset on disk for end-to-end runs."""

import os

# Before JAX starts: 2 devices, so every in-process test shards its batch (`main`
# itself defaults to one device with Eigen convolutions; see host_devices).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA's optimizer off, here and in every command a test runs: the tests' programs are
# tiny, so compiling is what they cost (about a quarter less without the optimizer);
# the `optimized` fixture turns it back on where that is what a test is about, or where
# unoptimized code runs slowly (a while loop's body: ~100x).
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
# One persistent compilation cache for the whole session (the test workers and every
# command they run), empty at its start: many tests build the same tiny programs, in
# other processes or as new closures that the in-memory cache does not match.
# Created by the first conftest to run (pytest's own process); its workers inherit it.
_CACHE_OWNER = "_RESNET_FLAX_TEST_CACHE_OWNER"
if "RESNET_FLAX_COMPILE_CACHE" not in os.environ:
    import tempfile

    os.environ["RESNET_FLAX_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="resnet_flax_tests_jax_")
    os.environ[_CACHE_OWNER] = str(os.getpid())

import pathlib  # noqa: E402
import shutil  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from resnet_flax.cli import compile_cache  # noqa: E402

compile_cache.enable()  # In this process too: the in-process tests share it.
# JAX's backends start now, with the flags above: a command called in-process (its
# set-up leaves started backends alone) then computes as every other test does.
jax.devices()


def pytest_unconfigure(config):
    if os.environ.get(_CACHE_OWNER) == str(os.getpid()):
        shutil.rmtree(os.environ["RESNET_FLAX_COMPILE_CACHE"], ignore_errors=True)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_TRAIN, TINY_TEST = 64, 23  # 23: eval batches of 8 end ragged.


def write_tiny_fashion_mnist(data_dir: pathlib.Path) -> None:
    """A real TFDS ``fashion_mnist`` (array_record) with a few generated examples.

    Each class is a different brightness, so a model can learn it.
    """
    import tensorflow_datasets as tfds

    from resnet_flax.data import png, tfds_writer

    rng = np.random.default_rng(0)
    builder = tfds.builder("fashion_mnist", data_dir=str(data_dir))

    def examples(n):
        for i in range(n):
            label = i % 10
            image = rng.integers(0, 40, (28, 28, 1)) + 20 * label
            yield i, {"image": png.encode(image.astype(np.uint8)), "label": label}

    tfds_writer.write_dataset(builder.info, {"train": examples(TINY_TRAIN),
                                             "test": examples(TINY_TEST)},
                              pathlib.Path(builder.data_dir), shuffled=True)


def built_folder(tmp_path: pathlib.Path) -> str:
    """A two-class folder of images of two sizes, built into ``tmp_path/tfds``."""
    from PIL import Image

    from resnet_flax.data import folders

    for name, size in (("a", (40, 30)), ("b", (30, 40))):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", size, (100 * i, 50, 0)).save(tmp_path / "images" / name / f"{i}.png")
    name = f"folder:{tmp_path / 'images'}"
    folders.build(name, str(tmp_path / "tfds"), holdout=0.5, workers=1)
    return name


JPEG_TRAIN, JPEG_TEST = 24, 10


def write_tiny_imagenette(data_dir: pathlib.Path) -> None:
    """A real TFDS ``imagenette`` (array_record, JPEG-encoded) of generated RGB images of
    mixed sizes (16-40 pixels a side, portrait and landscape); each class a colour."""
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(1)
    builder = tfds.builder("imagenette")

    def examples(n):
        for i in range(n):
            label = i % 10
            h, w = rng.integers(16, 41, 2)
            image = rng.integers(0, 60, (h, w, 3)) + np.asarray([20, 10, 5]) * label
            yield i, {"image": image.astype(np.uint8), "label": label}

    tfds.dataset_builders.store_as_tfds_dataset(
        "imagenette", str(builder.version), builder.info.features,
        {"train": list(examples(JPEG_TRAIN)), "validation": list(examples(JPEG_TEST))},
        config=builder.builder_config.name, data_dir=str(data_dir),
        file_format="array_record")


@pytest.fixture(scope="session")
def jpeg_data_dir(tmp_path_factory) -> pathlib.Path:
    data_dir = tmp_path_factory.mktemp("tfds_jpeg")
    write_tiny_imagenette(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> pathlib.Path:
    data_dir = tmp_path_factory.mktemp("tfds")
    write_tiny_fashion_mnist(data_dir)
    return data_dir


def _session_root(tmp_path_factory) -> pathlib.Path:
    """A folder every test process of this session shares: the workers' common parent
    under pytest-xdist, the session's own temporary folder without it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def one_epoch_run(tiny_data_dir, tmp_path_factory) -> pathlib.Path:
    """One epoch of the tiny recipe (checkpoints at steps 4 and 8), trained once for the
    whole session, whichever worker asks first. Read it, or copy it before writing."""
    import filelock
    from runs import run_main

    root = _session_root(tmp_path_factory)
    workdir = root / "one_epoch_run"
    with filelock.FileLock(str(root / "one_epoch_run.lock")):
        if not workdir.is_dir():
            partial = root / "one_epoch_run.partial"
            shutil.rmtree(partial, ignore_errors=True)
            proc = run_main(partial, *tiny_overrides(tiny_data_dir, num_epochs=1))
            assert proc.returncode == 0, proc.stderr[-3000:]
            partial.rename(workdir)
    return workdir


def tiny_overrides(data_dir, **extra) -> list[str]:
    """CLI overrides that make configs/fashion_mnist.py run in seconds on the tiny data."""
    values = {"data_dir": str(data_dir), "batch_size": 8, "eval_batch_size": 8,
              "num_epochs": 2, "checkpoint_every_steps": 4, "progress_bar": False,
              "allow_download": False, "model_options.width_multiplier": 0.25, **extra}
    return [f"--config.{k}={v}" for k, v in values.items()]


def tiny_config(data_dir, **values):
    """The default config (the tutorial net at quarter width) on the tiny data, for an
    in-process ``train_and_evaluate``; ``values`` set top-level fields."""
    from resnet_flax.config import default_config

    config = default_config()
    settings = {"data_dir": str(data_dir), "allow_download": False, "batch_size": 16,
                "eval_batch_size": 8, "progress_bar": False, **values}
    for key, value in settings.items():
        config[key] = value
    config.model_options.width_multiplier = 0.25
    return config


@pytest.fixture(scope="session")
def torchvision_resnet18(tmp_path_factory):
    """A torchvision ResNet-18 state dict (random init, seeded) saved as a ``.pth`` file."""
    torch = pytest.importorskip("torch")
    import torch_models

    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torch_models.randomize_(torch_models.REFERENCES["resnet18"]()).state_dict(),
               path)
    return path


@pytest.fixture
def optimized():
    """XLA's optimizer on, for this test's compiles in this process."""
    import jax

    flag = "jax_disable_most_optimizations"
    old = jax.config.values[flag]
    jax.config.update(flag, False)
    yield
    jax.config.update(flag, old)
