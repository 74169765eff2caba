"""``python -m resnet_flax.export``: a trained run and pretrained weights leave the project as
StableHLO and a Hub-layout weights folder, each read back by a real runtime (JAX alone,
``pretrained.load``, torch) and compared with the model's own logits."""

import json
import os
import subprocess
import sys

import hub_cache
import jax
import numpy as np
import pytest
from conftest import REPO, tiny_overrides
from runs import final_params, run_main

from resnet_flax import pretrained
from resnet_flax.data import tfds_source
from resnet_flax.run import evaluate
from resnet_flax.workdir import resume_guard

# Loads model.stablehlo and computes its logits with JAX alone (no resnet_flax import).
_STANDALONE = """
import sys, jax, numpy as np
exported = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
np.save(sys.argv[3], np.asarray(exported.call(np.load(sys.argv[2]))))
assert not any(m.startswith("resnet_flax") for m in sys.modules), "needed the project"
"""


def export_cli(*args):
    return subprocess.run([sys.executable, "-m", "resnet_flax.export", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"})


def standalone_logits(path, images, tmp_path):
    np.save(tmp_path / "images.npy", images)
    subprocess.run([sys.executable, "-c", _STANDALONE, path, tmp_path / "images.npy",
                    tmp_path / "logits.npy"], check=True, cwd=tmp_path, timeout=300)
    return np.load(tmp_path / "logits.npy")


def onnxruntime_logits(path, images, tmp_path):
    """The real onnxruntime, in a process of its own (it and jaxlib share no process)."""
    np.save(tmp_path / "images.npy", images)
    subprocess.run([sys.executable, "-m", "resnet_flax.export.run_onnx", path,
                    tmp_path / "images.npy", tmp_path / "onnx.npy"], check=True, cwd=REPO,
                   timeout=300)
    return np.load(tmp_path / "onnx.npy")


def relative(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.fixture(scope="module")
def trained(tiny_data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    result = run_main(workdir, *tiny_overrides(tiny_data_dir, ema_decay=0.9, tta_flip=True,
                                                     best_metric="test_accuracy"))
    assert result.returncode == 0, result.stderr[-2000:]
    return workdir


def test_a_run_exports_to_stablehlo_and_a_weights_folder_equal_to_its_evaluation(
        trained, tiny_data_dir, tmp_path):
    out = tmp_path / "exported"
    result = export_cli("--workdir", trained, "--output", out, "--checkpoint", "best")
    assert result.returncode == 0, result.stderr[-2000:]
    assert set(result.stdout.split()) >= {"stablehlo:", "onnx:", "weights:"}
    config = resume_guard.load(trained)
    images, _ = tfds_source.load_split("fashion_mnist", "test", data_dir=str(tiny_data_dir),
                                       allow_download=False)
    state = evaluate.restore(config, trained, "best")
    expected = evaluate.logits_of(config, state, images)  # EMA and flip TTA, as the run's.
    for found in (standalone_logits(out / "model.stablehlo", images, tmp_path),
                  onnxruntime_logits(out / "model.onnx", images, tmp_path)):
        assert found.shape == expected.shape  # 23 images: the batch is any size.
        assert relative(found, expected) <= 1e-4
        np.testing.assert_array_equal(found.argmax(-1), expected.argmax(-1))
    # The weights folder reads back as the EMA variables the run evaluates, exactly.
    model, variables = pretrained.load(str(out / "weights"))
    jax.tree.map(np.testing.assert_array_equal, variables, jax.device_get(state.ema))
    assert model.num_classes == 10 and model.widths()[0] == 8  # width_multiplier 0.25 kept.
    described = json.loads((out / "export.json").read_text())
    assert described["input"] == {"shape": [None, 28, 28, 1], "dtype": "uint8",
                                  "layout": "NHWC", "values": "0..255"}
    assert described["class_names"][0] == "T-shirt/top" and "step" in described["source"]
    assert max(described["largest_relative_difference"].values()) <= 1e-4
    card = (out / "weights" / "README.md").read_text()
    assert "fashion_mnist_resnet" in card and '"ema_decay": 0.9' in card


def test_pretrained_weights_export_and_the_folder_loads_in_torch(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants
    from safetensors.torch import load_file

    from resnet_flax import export

    root = tmp_path / "hub"
    reference, files = hub_cache.timm_files("resnet50", "resnet50", "tv_in1k")
    hub_cache.add_repo(root, "timm/resnet50.tv_in1k", files)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    exportable = export.from_weights("resnet50.tv_in1k")
    written = export.export(exportable, tmp_path / "r50")
    images = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    expected = np.asarray(exportable.logits(exportable.variables, images))
    for found in (standalone_logits(written["stablehlo"], images, tmp_path),
                  onnxruntime_logits(written["onnx"], images, tmp_path)):
        assert relative(found, expected) <= 1e-4
        np.testing.assert_array_equal(found.argmax(-1), expected.argmax(-1))
    # timm's and torchvision's own model reads the folder's file strictly, and agrees.
    reference.load_state_dict(load_file(written["weights"] / "model.safetensors"), strict=True)
    x = (images / 255.0 - np.array(exportable.mean)) / np.array(exportable.std)
    with torch.no_grad():
        torch_logits = reference.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2)).float())
    assert relative(torch_logits.numpy(), expected) <= 1e-4
    config = json.loads((written["weights"] / "config.json").read_text())
    assert config["architecture"] == "resnet50" and config["pretrained_cfg"]["crop_pct"] == 0.875


SIZES = (8, 16, 24, 32, 33, 64, 100, 112, 160, 176, 224, 232, 288, 299)
FRACTIONS = (0.5, 0.7, 0.8, 0.85, 0.875, 0.9, 0.9375, 0.95, 0.96, 1.0)


def test_a_weights_folder_has_its_runs_view_under_timms_rule_at_every_size():
    """The folder's ``pretrained_cfg`` gives the run's resize by timm's own rule
    (``floor(size / crop_pct)``), and its weights' view the run's pixels, bit for bit."""
    import math
    import types

    from PIL import Image

    from resnet_flax.data import crops
    from resnet_flax.export import hub_folder
    from resnet_flax.pretrained import catalogue, transform

    rng = np.random.default_rng(0)
    for size in SIZES:
        for fraction in FRACTIONS:
            resize = crops.eval_resize(size, fraction)
            channels = 1 if size % 2 else 3
            run = types.SimpleNamespace(
                input_shape=(size, size, channels), model_name="resnet18", source="a run",
                view={"resize_shorter": resize, "centre_crop": size,
                      "interpolation": "bilinear"}, class_names=("a", "b"),
                mean=(0.5,) * channels, std=(0.25,) * channels, model_options={})
            config = json.loads(json.dumps(hub_folder.hub_config(run)))  # As written.
            pct = config["pretrained_cfg"]["crop_pct"]
            assert math.floor(size / pct) == resize, (size, fraction, pct)
            weights = catalogue.from_hub_config("folder", config)
            assert weights.resize_to == resize
            if fraction not in (0.8, 0.875, 0.95):
                continue  # The pixels: three fractions, images wider, taller, smaller.
            for h, w in ((resize + 7, resize + 30), (2 * resize + 3, resize), (size, 9)):
                pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
                image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
                np.testing.assert_array_equal(transform.eval_view(image, weights),
                                              crops.centre_crop(pixels, size, fraction))


@pytest.mark.parametrize("args,expected", [
    (["--formats", "tflite,weights"], "--formats 'tflite,weights': each must be one of "),
    (["--checkpoint", "7"], "no checkpoint step 7 in "),
    (["--output", "EXISTING"], "already exists: choose a new --output, or --overwrite"),
])
def test_a_bad_export_is_one_error_line(trained, tmp_path, args, expected):
    (tmp_path / "EXISTING").mkdir()
    args = [a.replace("EXISTING", str(tmp_path / "EXISTING")) for a in args]
    output = [] if "--output" in args else ["--output", tmp_path / "new"]
    result = export_cli("--workdir", trained, *output, *args)
    assert result.returncode == 2 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "new").exists()


def test_a_workdir_without_checkpoints_is_refused_in_one_line(tmp_path):
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    resume_guard.record(resume_guard.default_config(), workdir, {}, 0)
    result = export_cli("--workdir", workdir, "--output", tmp_path / "new")
    assert result.returncode == 2 and "has no checkpoints/" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_final_checkpoint_is_the_latest_exported(trained, tmp_path):
    step, _ = final_params(trained)
    out = tmp_path / "latest"
    assert export_cli("--workdir", trained, "--output", out, "--formats",
                      "weights").returncode == 0
    assert f"step {step} (latest)" in json.loads((out / "export.json").read_text())["source"]
    assert not (out / "model.stablehlo").exists()


def test_a_model_the_onnx_converter_cannot_express_is_named():
    from resnet_flax.export import ExportError, onnx_graph

    with pytest.raises(ExportError, match="no rule for JAX's 'cumsum'"):
        onnx_graph.convert(lambda x: jax.numpy.cumsum(x.astype("float32"), axis=1),
                           (4, 4, 1))


def test_a_plain_twin_exports_and_reads_back(tmp_path):
    from resnet_flax import export, models

    model = models.create("plain_resnet20")
    variables = jax.device_get(model.init(jax.random.key(0), np.zeros((1, 32, 32, 3)),
                                          train=False))
    exportable = export.Exportable(
        "plain_resnet20", {}, model, variables,
        lambda v, x: model.apply(v, x.astype("float32") / 255, train=False), (32, 32, 3),
        (0.0,) * 3, (1.0,) * 3, tuple(str(i) for i in range(10)), "random init")
    written = export.export(exportable, tmp_path / "plain", formats=("weights",))
    loaded, _ = pretrained.load(str(written["weights"]))
    assert loaded.shortcut is None
