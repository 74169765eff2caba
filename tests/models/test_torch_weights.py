"""Weight import: torch models with random weights and BN statistics, converted by
``torch_weights.from_torch``, give the same logits (1e-4) and stage activations (1e-3)."""

from __future__ import annotations

import pickle
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resnet_flax import models
from resnet_flax.models import torch_weights

torch = pytest.importorskip("torch")
torch_models = pytest.importorskip("torch_models")



class Payload:
    """An arbitrary object: a full unpickler would construct it, ``weights_only`` refuses."""


STAGES = ("stem", "stage1", "stage2", "stage3", "stage4")


def torch_model(name, seed=0, num_classes=1000):
    torch.manual_seed(seed)
    model = torch_models.REFERENCES[name]()
    if num_classes != 1000:
        model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
    return torch_models.randomize_(model, seed)


def assert_same_outputs(name, reference, variables, image_size=64, **overrides):
    x = np.random.default_rng(0).normal(size=(2, 3, image_size, image_size)).astype(np.float32)
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in reference.forward_features(
            torch.from_numpy(x)).items()}
    model = models.create(name, num_classes=expected["logits"].shape[1], **overrides)
    got = jax.jit(lambda v, x: model.apply(v, x, train=False, return_features=True))(
        variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(got["logits"], expected["logits"], atol=1e-4, rtol=0)
    for stage in STAGES:
        np.testing.assert_allclose(got[stage], expected[stage].transpose(0, 2, 3, 1),
                                   atol=1e-3, rtol=0, err_msg=stage)


@pytest.mark.parametrize("name, image_size", [
    ("resnet18", 64),
    ("resnet50", 64),
    ("resnext50_32x4d", 64),
    ("wide_resnet50_2", 64),
    ("resnet50d", 67),  # odd sizes: ceil-mode average pooling in the shortcuts
    ("se_resnet50", 64),
    pytest.param("resnet34", 64, marks=pytest.mark.slow),
    pytest.param("resnet101", 64, marks=pytest.mark.slow),
    pytest.param("resnext101_32x8d", 64, marks=pytest.mark.slow),
])
def test_converted_torch_model_matches(name, image_size):
    reference = torch_model(name)
    variables = torch_weights.from_torch(name, reference.state_dict())
    assert set(variables) == {"params", "batch_stats"}
    assert_same_outputs(name, reference, variables, image_size)


def test_numpy_state_dict_and_class_count_from_fc():
    reference = torch_model("resnet18", seed=1, num_classes=10)
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    variables = torch_weights.from_torch("resnet18", state)
    assert variables["params"]["fc"]["kernel"].shape == (512, 10)
    assert_same_outputs("resnet18", reference, variables)


def test_converted_weights_run_in_bfloat16():
    reference = torch_model("resnet18")
    variables = torch_weights.from_torch("resnet18", reference.state_dict())
    model = models.create("resnet18", dtype="bfloat16")
    x = jnp.ones((1, 32, 32, 3))
    # Compiled: op by op, each op of each shape compiles a program of its own.
    full = jax.jit(lambda v: models.create("resnet18").apply(v, x, train=False))(variables)
    half = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
    np.testing.assert_allclose(half, full, atol=0.1)


def test_pth_file_is_read_with_weights_only(tmp_path):
    reference = torch_model("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": reference.state_dict(), "epoch": 3}, path)
    assert_same_outputs("resnet18", reference, torch_weights.from_torch("resnet18", path))

    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": Payload()}, evil)
    with pytest.raises(pickle.UnpicklingError), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch_weights.load_state_dict(evil)
    assert not seen  # Refused in one error: no torch advice beside it.
    with open(tmp_path / "evil4.pth", "wb") as f:  # Protocol 4: torch warns about it.
        pickle.dump({"fc.weight": Payload()}, f, protocol=4)
    with pytest.raises(pickle.UnpicklingError), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch_weights.load_state_dict(tmp_path / "evil4.pth")
    assert not seen


def test_safetensors_file(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    reference = torch_model("resnet18")
    path = tmp_path / "resnet18.safetensors"
    safetensors_numpy.save_file(
        {k: np.ascontiguousarray(v.numpy()) for k, v in reference.state_dict().items()}, path)
    assert_same_outputs("resnet18", reference, torch_weights.from_torch("resnet18", str(path)))


def _state(name="resnet18"):
    return {k: v.numpy() for k, v in torch_model(name).state_dict().items()}


def test_missing_key_is_named():
    state = _state()
    del state["layer3.1.bn2.running_var"]
    with pytest.raises(ValueError, match=r"missing keys: layer3\.1\.bn2\.running_var"):
        torch_weights.from_torch("resnet18", state)


def test_shape_mismatch_is_named():
    state = _state()
    state["layer2.0.conv1.weight"] = np.zeros((128, 64, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"shape mismatch: layer2\.0\.conv1\.weight"):
        torch_weights.from_torch("resnet18", state)


def test_unexpected_key_is_named():
    state = _state()
    state["layer5.0.conv1.weight"] = np.zeros((1,), np.float32)
    with pytest.raises(ValueError, match=r"unexpected keys: layer5\.0\.conv1\.weight"):
        torch_weights.from_torch("resnet18", state)


def test_wrong_architecture_fails():
    with pytest.raises(ValueError, match="does not fit 'resnet34'"):
        torch_weights.from_torch("resnet34", _state("resnet18"))


def test_key_mapping():
    assert torch_weights.torch_key(("layer2_0", "downsample", "conv", "kernel"), "params") == \
        "layer2.0.downsample.0.weight"
    assert torch_weights.torch_key(("layer2_0", "downsample", "bn", "mean"), "batch_stats",
                                avg_down=True) == "layer2.0.downsample.2.running_mean"
    assert torch_weights.torch_key(("bn1_1", "scale"), "params") == "conv1.4.weight"
    assert torch_weights.torch_key(("layer1_0", "se", "fc1", "bias"), "params") == \
        "layer1.0.se.fc1.bias"
    assert torch_weights.torch_key(("fc", "kernel"), "params") == "fc.weight"


@pytest.mark.parametrize("shape", [(3, 3, 4, 5), (6, 10), (7,)])
def test_the_torch_layout_is_the_flax_layouts_inverse(shape):
    from resnet_flax.models.torch_weights import to_flax_layout, to_torch_layout

    array = np.random.default_rng(0).normal(size=shape)
    torch_side = to_torch_layout(array)
    assert torch_side.shape == {4: shape[::-1][:2] + shape[:2], 2: shape[::-1],
                                1: shape}[len(shape)]
    np.testing.assert_array_equal(to_flax_layout(torch_side, shape), array)
