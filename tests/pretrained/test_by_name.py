"""Pretrained weights by name, offline: a real ``huggingface_hub`` cache holding a
random-init torch ResNet-18 as timm publishes it; the Flax model's predictions equal the
torch model's on the same images."""

import os
import subprocess
import sys

import hub_cache
import jax
import numpy as np
import pytest
from conftest import REPO
from PIL import Image

pytest.importorskip("huggingface_hub")
torch = pytest.importorskip("torch")

from resnet_flax import pretrained  # noqa: E402
from resnet_flax.pretrained import hub, imagenet  # noqa: E402

NAME = "resnet18.tv_in1k"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf") / "hub"
    model, files = hub_cache.timm_files("resnet18", "resnet18", "tv_in1k")
    hub_cache.add_repo(root, "timm/" + NAME, files)
    return root, model


@pytest.fixture
def offline(cache, monkeypatch):
    from huggingface_hub import constants

    root, model = cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root, model


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(300, 400), (256, 256), (500, 240)]):
        smooth = rng.integers(0, 256, (h // 20 + 1, w // 20 + 1, 3), dtype=np.uint8)
        Image.fromarray(smooth).resize((w, h), Image.BICUBIC).save(folder / f"p{i}.png")
    return sorted(folder.glob("*.png"))


def torch_view(path, resize=256, size=224):
    """torchvision's Resize(256) + CenterCrop(224) + ToTensor + Normalize, by hand."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    short = resize
    new = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    image = image.resize(new, Image.BILINEAR)
    left, top = int(round((new[0] - size) / 2)), int(round((new[1] - size) / 2))
    x = np.asarray(image.crop((left, top, left + size, top + size)), np.float32) / 255
    x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return torch.from_numpy(x.transpose(2, 0, 1).astype(np.float32))


def test_load_by_name_gives_the_torch_models_predictions_and_imagenets_names(offline, photos):
    _, reference = offline
    loaded = pretrained.load(NAME)
    model, variables = loaded
    assert loaded.weights.model == "resnet18" and loaded.class_names[0] == "tench"
    logits = np.asarray(jax.jit(lambda x: model.apply(variables, x, train=False))(
        pretrained.preprocess(photos, loaded.weights)))
    with torch.no_grad():
        expected = reference(torch.stack([torch_view(p) for p in photos])).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert (logits.argmax(-1) == expected.argmax(-1)).all()


def test_a_hub_id_takes_the_transform_from_the_repos_config(cache, offline, monkeypatch):
    root, _ = cache
    _, files = hub_cache.timm_files("resnet18", "resnet18", "a1_in1k", crop_pct=0.95,
                                    interpolation="bicubic")
    hub_cache.add_repo(root, "someone/resnet18-copy", files)
    loaded = pretrained.load("someone/resnet18-copy")
    assert (loaded.weights.crop_fraction, loaded.weights.interpolation) == (0.95, "bicubic")
    assert loaded.weights.resize_to == 235  # timm: floor(224 / 0.95)


def test_offline_without_the_file_says_where_to_put_it(offline):
    with pytest.raises(pretrained.PretrainedError) as e:
        pretrained.load("resnet50.tv2_in1k")
    message = str(e.value)
    assert "HF_HUB_OFFLINE=1" in message and str(offline[0]) in message
    assert "hf download timm/resnet50.tv2_in1k" in message and "\n" not in message


def test_an_unknown_name_suggests_the_nearest_known_ones(offline):
    with pytest.raises(pretrained.PretrainedError, match="did you mean 'resnet18.tv_in1k'"):
        pretrained.load("resnet18_tv_in1k")
    with pytest.raises(pretrained.PretrainedError, match="for resnet18: a1_in1k, tv_in1k"):
        pretrained.load("resnet18.tv_inlk")  # Tried on the hub: another timm tag may be.


def test_a_damaged_cached_file_is_refused_with_what_to_do(tmp_path, monkeypatch):
    from huggingface_hub import constants

    _, files = hub_cache.timm_files("resnet18", "resnet18", "tv_in1k")
    snapshot = hub_cache.add_repo(tmp_path, "timm/" + NAME, files)
    blob = (snapshot / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0xFF
    blob.write_bytes(bytes(data))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(pretrained.PretrainedError, match="is damaged.*delete"):
        pretrained.load(NAME)


def test_a_local_file_needs_its_model_and_then_loads(offline, tmp_path):
    copy = tmp_path / "r18.safetensors"
    copy.write_bytes(hub.fetch("timm/" + NAME).read_bytes())
    with pytest.raises(pretrained.PretrainedError, match="needs the model"):
        pretrained.load(str(copy))
    with pytest.raises(pretrained.PretrainedError, match="no such file"):
        pretrained.load(str(tmp_path / "absent.safetensors"), model="resnet18")
    assert pretrained.load(str(copy), model="resnet18").class_names[1] == "goldfish"


def test_predict_with_weights_by_name_prints_imagenet_names(offline, photos):
    root, reference = offline
    env = {**os.environ, "HF_HUB_CACHE": str(root), "HF_HUB_OFFLINE": "1",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-m", "resnet_flax.predict", "--weights", NAME,
                          "--top-k", "2", *map(str, photos)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    with torch.no_grad():
        best = reference(torch.stack([torch_view(p) for p in photos])).argmax(-1).numpy()
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(photos)
    for line, path, index in zip(lines, photos, best):
        assert line.startswith(f"{path}: {imagenet.class_names()[index]} ")


def test_predict_offline_without_the_weights_is_one_line(tmp_path, photos):
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-m", "resnet_flax.predict", "--weights",
                          "resnet50.tv2_in1k", str(photos[0])], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert "HF_HUB_OFFLINE=1" in out.stderr


def finetune_config(data_dir, **changes):
    from resnet_flax import cli

    config = cli.load_config_file(str(REPO / "configs" / "finetune_fashion_mnist.py"))
    values = {"data_dir": str(data_dir), "allow_download": False, "input_size": 16,
              "batch_size": 16, "eval_batch_size": 8, "num_epochs": 1, "lr": 0.02,
              "warmup_epochs": 0.0, "progress_bar": False, "init_from": NAME, **changes}
    for key, value in values.items():
        config[key] = value
    return config


def test_init_from_a_name_reads_the_hub_weights_and_refuses_another_model(offline, tmp_path):
    from resnet_flax.config import ConfigError
    from resnet_flax.models import torch_weights
    from resnet_flax.run import finetune

    config = finetune_config(tmp_path)
    got = finetune.source_variables(config)
    want = torch_weights.from_torch("resnet18", hub.fetch("timm/" + NAME))
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), got, want))
    config.model = "resnet34"
    with pytest.raises(ConfigError, match="those are resnet18 weights; this config trains "
                                          "resnet34"):
        finetune.check_source(config)
    config.init_from = "runs_that_do_not_exist"
    with pytest.raises(ConfigError, match="no such file or folder; unknown weights"):
        finetune.check_source(config)


@pytest.mark.slow
def test_main_fine_tunes_from_weights_by_name(offline, tiny_data_dir, tmp_path):
    from flax import traverse_util
    from runs import final_params

    from resnet_flax.models import torch_weights
    from resnet_flax.run import train_loop

    train_loop.train_and_evaluate(finetune_config(tiny_data_dir), str(tmp_path))
    _, tree = final_params(tmp_path)
    start = torch_weights.from_torch("resnet18", hub.fetch("timm/" + NAME))
    frozen = traverse_util.flatten_dict(start["params"]["conv1"])
    after = traverse_util.flatten_dict(tree["params"]["conv1"])
    for key, value in frozen.items():  # The frozen stem is the hub's, bit for bit.
        np.testing.assert_array_equal(np.asarray(after[key]), np.asarray(value))


def write_tiny_imagenet(data_dir, photos_dir, labels_of):
    """A real TFDS ``imagenet2012`` whose validation split holds JPEG files as they are,
    labelled by ``labels_of(paths)``."""
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(3)
    paths = []
    for i, (h, w) in enumerate([(260, 300), (300, 240), (256, 256), (280, 350)]):
        smooth = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        path = photos_dir / f"v{i}.jpg"
        Image.fromarray(smooth).resize((w, h), Image.BICUBIC).save(path, quality=95)
        paths.append(path)
    labels = labels_of(paths)
    builder = tfds.builder("imagenet2012")
    examples = [(i, {"image": str(p), "label": int(y), "file_name": p.name})
                for i, (p, y) in enumerate(zip(paths, labels))]
    tfds.dataset_builders.store_as_tfds_dataset(
        "imagenet2012", str(builder.version), builder.info.features,
        {"train": examples[:2], "validation": examples}, data_dir=str(data_dir),
        file_format="array_record")
    return paths, labels


@pytest.mark.slow
def test_eval_mode_scores_weights_by_name_on_imagenet_validation(offline, tmp_path):
    root, reference = offline
    (tmp_path / "photos").mkdir()

    def torch_labels(paths):  # The torch model's classes, the last one off on purpose.
        with torch.no_grad():
            best = reference(torch.stack([torch_view(p) for p in paths])).argmax(-1).numpy()
        best[-1] = (best[-1] + 1) % 1000
        return best

    write_tiny_imagenet(tmp_path / "tfds", tmp_path / "photos", torch_labels)
    env = {**os.environ, "HF_HUB_CACHE": str(root), "HF_HUB_OFFLINE": "1",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-m", "resnet_flax.main", "--mode", "eval", "--weights", NAME,
         "--workdir", str(tmp_path / "eval_run"), "--config", str(REPO / "configs" /
                                                                  "imagenet.py"),
         f"--config.data_dir={tmp_path / 'tfds'}", "--config.allow_download=False",
         "--config.eval_batch_size=2", "--config.input_workers=0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(4 imagenet2012 validation images)" in out.stdout
    assert "accuracy=0.7500 (published: 69.75%)" in out.stdout
    import json

    result = json.loads((tmp_path / "eval_run" / "eval" / f"{NAME}.json").read_text())
    assert result["examples"] == 4 and result["published_top1"] == pytest.approx(69.752)
    assert result["accuracy"] == pytest.approx(0.75)


def test_an_unreachable_hub_serves_the_cache_and_refuses_the_rest_in_one_line(cache,
                                                                             monkeypatch):
    """No HF_HUB_OFFLINE, no network (a hub address nothing listens on): what is cached
    loads, the rest is the offline line, without the library's retries."""
    from huggingface_hub import constants

    root, _ = cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1:9")
    model, _ = pretrained.load(NAME)
    assert model.num_classes == 1000
    with pytest.raises(pretrained.PretrainedError, match="the hub cannot be reached: fetch"):
        pretrained.load("resnet50.tv2_in1k")
