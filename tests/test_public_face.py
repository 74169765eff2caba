"""``import resnet_flax``: the names a notebook uses, loaded on first use."""

import subprocess
import sys

import resnet_flax


def test_the_public_names_are_the_modules_own():
    from resnet_flax import models
    from resnet_flax.run import evaluate, train_loop

    assert resnet_flax.create_model is models.create
    assert resnet_flax.model_names is models.names
    assert resnet_flax.train_and_evaluate is train_loop.train_and_evaluate
    assert resnet_flax.evaluate_checkpoint is evaluate.evaluate_checkpoint
    assert set(resnet_flax.__all__) <= set(dir(resnet_flax))
    assert resnet_flax.create_model("resnet20").num_classes == 10


def test_importing_the_package_imports_no_jax():
    probe = "import sys, resnet_flax; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_an_unknown_name_is_an_attribute_error():
    try:
        resnet_flax.create_modle  # noqa: B018
    except AttributeError as e:
        assert "create_modle" in str(e)
    else:
        raise AssertionError("no AttributeError")
