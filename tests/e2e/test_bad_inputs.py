"""The bad-input battery: every mistake and damage we know of, run as a user would.

Each case runs one command line (``main``, ``data.build``, ``summary`` or
``benchmark``) in a subprocess and asserts its exit status, that stderr is one line
(``error: ...``, or ``warning: ...`` where the run recovers) naming the problem, and
that every file the workdir held before is still there with the same bytes, or
moved aside to ``checkpoints_corrupt/`` for a damaged checkpoint step.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest
from conftest import REPO, SHARED_DATA, tiny_overrides

CONFIG = "configs/fashion_mnist.py"
CORRUPT = "checkpoints_corrupt"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # {data}, {workdir} and {tmp} are filled in.
    expected: str  # Part of the one line.
    module: str = "resnet_flax.main"
    trained: bool = False  # Start from a copy of a finished one-epoch run.
    damage: Callable[[pathlib.Path], None] | None = None
    status: int = 2
    slow: bool = False  # Over ~5 s: trains first, reads a dataset or starts TensorFlow.
    started: bool = False  # Failed after training began: its own records may stay.


def _main(*extra: str) -> tuple[str, ...]:
    return ("--config", CONFIG, "--workdir", "{workdir}", *extra)


def _tiny(*extra: str) -> tuple[str, ...]:
    return _main("{tiny}", *extra)


def _write(relative: str, text: str):
    return lambda workdir: (workdir / relative).write_text(text)


def _append(relative: str, text: str):
    def damage(workdir):
        with open(workdir / relative, "a") as f:
            f.write(text)
    return damage


def _occupy(relative: str):
    return lambda workdir: (workdir / relative).write_text("not a folder")


def _images_beside(workdir: pathlib.Path) -> None:
    """A good image and one past PIL's pixel limit (a decompression bomb) in <tmp>/images."""
    from PIL import Image

    folder = workdir.parent / "images"
    folder.mkdir()
    Image.new("L", (28, 28), 120).save(folder / "good.png")
    Image.new("1", (14000, 14000)).save(folder / "huge.png")


def _largest_file(step: pathlib.Path) -> pathlib.Path:
    return max((p for p in step.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _garble(*steps: int):
    def damage(workdir):
        for step in steps:
            data = _largest_file(workdir / "checkpoints" / str(step))
            raw = bytearray(data.read_bytes())
            raw[len(raw) // 4: len(raw) // 4 + 64] = os.urandom(64)
            data.write_bytes(bytes(raw))
    return damage


def _truncate(step: int):
    def damage(workdir):
        data = _largest_file(workdir / "checkpoints" / str(step))
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    return damage


CASES = [
    # Config keys, types and values: caught before anything is read or written.
    Case("unknown key", _main("--config.lrr=0.1"), "--config.lrr: no such config field; did "
         "you mean 'lr'?"),
    Case("unknown nested key", _main("--config.model_options.widht_multiplier=0.5"),
         "did you mean 'model_options.width_multiplier'"),
    Case("wrong type", _main("--config.batch_size=abc"),
         "flag --config.batch_size=abc: invalid literal for int()"),
    Case("nan lr", _main("--config.lr=nan"), "config.lr=nan must be a finite number >= 0"),
    Case("zero batch", _main("--config.batch_size=0"), "config.batch_size=0 must be positive"),
    Case("unknown optimizer", _main("--config.optimizer=sgdd"),
         "config.optimizer='sgdd' is not an optax optimizer; did you mean 'sgd'?"),
    Case("unknown model", _main("--config.model=resnet_50"),
         "config.model: unknown model 'resnet_50'; did you mean 'resnet50' or 'resnet50d'? "
         "`python -m resnet_flax.summary --zoo` lists all 31 (each also as plain_<name>"),
    Case("unknown dataset", _main("--config.dataset=cifar11"),
         "did you mean 'cifar10' or 'cifar100'?"),
    Case("unknown dtype", _main("--config.model_options.dtype=float64"),
         "config.model_options.dtype='float64' is not one of"),
    Case("label smoothing 1.5", _main("--config.label_smoothing=1.5"),
         "config.label_smoothing=1.5 must be in [0, 1)"),
    Case("stray argument", _main("stray"), "unexpected arguments ['stray']"),
    # Files and folders.
    Case("no config file", ("--config", "configs/nope.py", "--workdir", "{workdir}"),
         "--config configs/nope.py: no such file; recipes: configs/cifar10.py"),
    Case("broken config file", ("--config", "{tmp}/broken.py", "--workdir", "{workdir}"),
         "broken.py does not load: NameError: name 'undefined_name' is not defined"),
    Case("no workdir", ("--config", CONFIG), "Flag --workdir must have a value other than None"),
    Case("no config to train", ("--workdir", "{workdir}"), "--config is required to train"),
    Case("override without config", ("--workdir", "{workdir}", "--mode=eval", "--config.lr=1"),
         "--config.lr overrides a config file: give --config FILE too"),
    Case("workdir is a file", ("--config", CONFIG, "--workdir", "{tmp}/broken.py"),
         "broken.py is a file; give a folder"),
    Case("no dataset, no network", _main("--config.data_dir={tmp}/empty",
                                         "--config.allow_download=False"),
         "python -m resnet_flax.data.build fashion_mnist --archives"),
    Case("ImageNet not built", ("--config", "configs/imagenet.py", "--workdir", "{workdir}",
                                "--config.data_dir={tmp}/empty"),
         "cannot be downloaded (TFDS cannot download it); build it offline from ImageNet's "
         "ILSVRC2012 training and validation tarballs"),
    Case("images of varying size on the device path",
         _main("--config.dataset=imagenette", "--config.normalization=imagenet"),
         "config.dataset='imagenette' has images of varying size: set config.input='stream' "
         "and config.crop='inception'"),
    Case("unknown input", _main("--config.input=disk"),
         "config.input='disk' is not one of ('device', 'stream')"),
    Case("corrupt dataset file", _main("{garbled_data}"),
         "the train split cannot be read (Corrupted Riegeli/records file", slow=True),
    Case("garbled config.json", _tiny(), "config.json is unreadable", trained=True,
         damage=_write("config.json", "{garbage")),
    # Archives, through the offline build.
    Case("build: unknown dataset", ("fashion", "--archives", "{tmp}"),
         "unknown dataset 'fashion': valid are cifar10", module="resnet_flax.data.build"),
    Case("build: no such folder", ("mnist", "--archives", "{tmp}/nope"),
         "--archives {tmp}/nope: no such folder", module="resnet_flax.data.build"),
    Case("build: archives missing", ("mnist", "--archives", "{tmp}", "--data_dir", "{tmp}/d"),
         "lacks ['t10k-images-idx3-ubyte.gz'", module="resnet_flax.data.build"),
    Case("build: data_dir is a file", ("mnist", "--data_dir", "{tmp}/broken.py"),
         "--data_dir {tmp}/broken.py is a file", module="resnet_flax.data.build"),
    Case("build: damaged archive", ("fashion_mnist", "--archives", "{damaged_archives}",
                                    "--data_dir", "{tmp}/d"),
         "t10k-labels-idx1-ubyte.gz is not the original fashion_mnist file",
         module="resnet_flax.data.build", slow=True),
    # The other command lines.
    Case("summary: unknown model", ("--model", "resnet21"), "--model: unknown model 'resnet21'",
         module="resnet_flax.summary"),
    Case("benchmark: unknown model", ("--model", "resnet_50"), "--model: unknown model "
         "'resnet_50'; did you mean 'resnet50' or 'resnet50d'? `python -m resnet_flax.summary "
         "--zoo` lists all 31", module="resnet_flax.benchmark"),
    Case("summary: image size 0", ("--model", "resnet18", "--image-size", "0"),
         "--image-size 0: must be a positive integer", module="resnet_flax.summary"),
    Case("benchmark: batch 0", ("--batch", "0"), "--batch, --steps, --steps-per-dispatch "
         "and --profile-steps must be >= 1", module="resnet_flax.benchmark"),
    # Checkpoints: damaged, or of another model.
    Case("every step garbled", _tiny(), "no good checkpoint in {workdir}/checkpoints: every "
         "step was corrupt (step 8: ", trained=True, damage=_garble(4, 8)),
    Case("latest step truncated", _tiny(),  # Resumes at step 4 and saves step 8 again.
         "corrupt checkpoint (step 8: unreadable", trained=True, damage=_truncate(8), status=0),
    Case("another width", _tiny("--config.model_options.width_multiplier=0.5",
                                "--config.allow_config_change=True"),
         "holds another model", trained=True),
    Case("another model", _tiny("--config.model=resnet20", "--config.allow_config_change=True"),
         "holds another model", trained=True),
    # Evaluation (--mode eval): reads the run, never moves or writes its checkpoints.
    Case("eval: unknown mode", _main("--mode=evaluate"),
         "flag --mode=evaluate: value should be one of <train|eval>"),
    Case("eval: checkpoint typo", _main("--mode=eval", "--checkpoint=bset"),
         "--checkpoint bset: give `latest`, `best` or a step number"),
    Case("eval: best, none tracked", _tiny("--mode=eval", "--checkpoint=best"),
         "has no epoch metrics to choose a best step by: train with "
         "--config.best_metric=test_accuracy", trained=True),
    Case("eval: no workdir", ("--config", CONFIG, "--workdir", "{tmp}/none", "--mode=eval"),
         "--workdir {tmp}/none is not a folder: there is no run to evaluate"),
    Case("eval: no config, not a run", ("--workdir", "{workdir}", "--mode=eval"),
         "{workdir}/config.json does not exist: is this the --workdir of a run?"),
    Case("eval: nothing trained", _tiny("--mode=eval"), "{workdir} has no checkpoints/: train "
         "it first"),
    Case("eval: no such step", _tiny("--mode=eval", "--checkpoint=5"),
         "no checkpoint step 5 in {workdir}/checkpoints (steps: 4, 8)", trained=True),
    Case("eval: garbled step", _tiny("--mode=eval"),
         "checkpoint step 8 in {workdir}/checkpoints is corrupt: ", trained=True,
         damage=_garble(8)),
    Case("eval: another model", _tiny("--mode=eval", "--config.model=resnet20"),
         "was trained with another config (model 'fashion_mnist_resnet' -> 'resnet20')",
         trained=True),
    Case("predict: not a run", ("--workdir", "{workdir}", "x.png"),
         "{workdir}/config.json does not exist: is this the --workdir of a run?",
         module="resnet_flax.predict"),
    Case("predict: checkpoint typo", ("--workdir", "{workdir}", "--checkpoint", "bset", "x.png"),
         "--checkpoint bset: give `latest`, `best` or a step number",
         module="resnet_flax.predict"),
    Case("predict: top-k 0", ("--workdir", "{workdir}", "--top-k", "0", "x.png"),
         "--top-k 0: must be >= 1", module="resnet_flax.predict"),
    Case("predict: no images", ("--workdir", "{workdir}", "{tmp}"),
         "no image files in {tmp}", module="resnet_flax.predict", trained=True),
    # Changed configs on resume: refused, listing what differs.
    Case("changed batch size", _tiny("--config.batch_size=16"), "batch_size 8 -> 16",
         trained=True),
    Case("changed dataset", _tiny("--config.dataset=mnist"), "dataset 'fashion_mnist' -> "
         "'mnist'", trained=True),
    Case("changed seed", _tiny("--config.seed=1"), "seed 0 -> 1", trained=True),
    # Storage and records: set aside, never a crash; a path in the way, one line.
    Case("torn metrics row", _tiny("--config.num_epochs=2", "--config.keep_checkpoints=9"),
         "metrics.jsonl had a torn row (a short write); set aside in", trained=True,
         damage=_append("metrics.jsonl", '{"step": 12, "train_lo'), status=0),
    Case("torn config_changes row", _tiny("--config.num_epochs=2",
                                          "--config.keep_checkpoints=9"),
         "config_changes.jsonl had a torn row (a short write); set aside in", trained=True,
         damage=_write("config_changes.jsonl", '{"step": 8, "changes": {"num_ep'), status=0),
    Case("checkpoints is a file", _tiny(), "{workdir}/checkpoints is a file, where this run's "
         "checkpoints go: move it, or give another --workdir", damage=_occupy("checkpoints"),
         slow=True),
    Case("corrupt dataset file, stream input",
         _main("{garbled_data}", "--config.input=stream", "--config.input_workers=0"),
         "the train split cannot be read (Corrupted Riegeli/records file", slow=True,
         started=True),  # The stream reads as it trains: a damaged record is met late.
    # Training that cannot go on: said early, with the step and the likely causes.
    Case("diverging lr", _tiny("--config.lr=1e30"), "BatchNorm statistics by step 4; no "
         "checkpoint yet. Likely causes: too high a config.lr", slow=True, started=True),
    Case("batch larger than the data", _tiny("--config.batch_size=4096"),
         "config.batch_size=4096 exceeds the 64 training examples: give at most 64",
         slow=True),
    # Images and weights.
    Case("predict: an oversized image among good ones",
         ("--workdir", "{workdir}", "{tmp}/images"), "huge.png: not a readable image "
         "(ValueError: too large to read safely", module="resnet_flax.predict", trained=True,
         damage=_images_beside, status=1),
    Case("predict: unknown weights", ("--weights", "resnet_50", "x.png"),
         "unknown weights 'resnet_50'", module="resnet_flax.predict"),
    Case("weights without eval mode", _main("--weights", "resnet18.tv_in1k"),
         "--weights goes with --mode eval (to train from weights: "
         "--config.init_from=resnet18.tv_in1k)"),
]


def _snapshot(workdir: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(workdir)): p.read_bytes() for p in workdir.rglob("*")
            if p.is_file()}


@pytest.fixture(scope="module")
def garbled_data(tiny_data_dir, tmp_path_factory) -> pathlib.Path:
    data_dir = tmp_path_factory.mktemp("garbled") / "tfds"
    shutil.copytree(tiny_data_dir, data_dir)
    train = next(data_dir.rglob("*train.array_record*"))
    raw = bytearray(train.read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 200] = bytes(200)
    train.write_bytes(bytes(raw))
    return data_dir


def _run(module: str, args: list[str], workdir: pathlib.Path) -> subprocess.CompletedProcess:
    args = [a.replace("{workdir}", str(workdir)) for a in args]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def _damaged_archives(tmp: pathlib.Path) -> pathlib.Path:
    source = SHARED_DATA / "fashion_mnist"
    if not source.is_dir():
        pytest.skip(f"{source} is not here (the original archives)")
    archives = tmp / "archives"
    shutil.copytree(source, archives)
    labels = archives / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(labels.read_bytes())
    raw[100:110] = b"0123456789"
    labels.chmod(0o644)
    labels.write_bytes(bytes(raw))
    return archives


def _fill(case: Case, tmp: pathlib.Path, request) -> list[str]:
    values = {"{tmp}": str(tmp)}
    joined = " ".join(case.args)
    if "{tiny}" in joined:
        values["{tiny}"] = tiny_overrides(request.getfixturevalue("tiny_data_dir"),
                                          num_epochs=1)
    if "{garbled_data}" in joined:
        garbled = request.getfixturevalue("garbled_data")
        values["{garbled_data}"] = tiny_overrides(garbled, num_epochs=1)
    if "{damaged_archives}" in joined:
        values["{damaged_archives}"] = str(_damaged_archives(tmp))
    args = []
    for arg in case.args:
        value = values.get(arg, arg)
        if isinstance(value, list):
            args += value
        else:
            for key, text in values.items():
                if isinstance(text, str):
                    value = value.replace(key, text)
            args.append(value)
    return args


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow or c.trained else [])
    for c in CASES])
def test_a_bad_input_is_one_line_and_loses_nothing(case, tmp_path, request):
    (tmp_path / "broken.py").write_text("def get_config():\n    return undefined_name\n")
    workdir = tmp_path / "run"
    if case.trained:
        shutil.copytree(request.getfixturevalue("one_epoch_run"), workdir)
    else:
        workdir.mkdir()
        (workdir / "notes.txt").write_text("mine")
    if case.damage:
        case.damage(workdir)
    before = _snapshot(workdir)

    proc = _run(case.module, _fill(case, tmp_path, request), workdir)

    assert proc.returncode == case.status, proc.stderr[-3000:]
    # A recovered run goes on to say where it resumes, print its epochs and its end.
    lines = [ln for ln in proc.stderr.splitlines()
             if not ln.startswith(("epoch ", "resuming ", "done in "))]
    kind = "error: " if case.status else "warning: "
    assert len(lines) == 1 and lines[0].startswith(kind), proc.stderr[-3000:]
    expected = case.expected.replace("{tmp}", str(tmp_path)).replace("{workdir}", str(workdir))
    assert expected in lines[0]
    after = _snapshot(workdir)
    if not case.status:  # Recovered and trained on: its records are rewritten as it goes.
        before = {p: d for p, d in before.items() if p.startswith("checkpoints/")}
    for path, data in before.items():
        moved = path.replace("checkpoints/", f"{CORRUPT}/", 1)
        assert after.get(path) == data or after.get(moved) == data, path
    if case.status and not case.started:  # Refused: nothing new but a corrupt step's account.
        assert all(p.startswith(CORRUPT) for p in set(after) - set(before)), set(after) - set(
            before)
