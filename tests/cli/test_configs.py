"""Every recipe in configs/ loads, validates, and documents its command."""

import importlib.util
import re

import pytest
from conftest import REPO, built_folder

from resnet_flax import models
from resnet_flax.config import ConfigError
from resnet_flax.data import datasets
from resnet_flax.run.validate import validate

CONFIGS = sorted((REPO / "configs").glob("*.py"))


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_is_valid_and_documents_its_command(path, tmp_path):
    module = load(path)
    config = module.get_config()
    if datasets.is_folder(config.dataset):  # A placeholder: the user's folder, built.
        with pytest.raises(ConfigError, match="build it once with `python -m resnet_flax"):
            validate(config)
        config.dataset, config.data_dir = built_folder(tmp_path), str(tmp_path / "tfds")
    validate(config)
    assert config.model in models.names()
    datasets.get(config.dataset, config.data_dir or None)
    doc = module.__doc__
    assert f"python -m resnet_flax.main --config configs/{path.name}" in doc
    assert "Expected:" in doc


@pytest.mark.parametrize("name, params", [("cifar10_resnet18", 11_173_962),
                                          ("cifar10_wrn", 36_479_194),
                                          ("imagenet", 25_557_032)])
def test_recipes_build_the_models_their_docstrings_count(name, params):
    import math

    import jax
    import jax.numpy as jnp

    from resnet_flax.config import model_overrides

    config = load(REPO / "configs" / f"{name}.py").get_config()
    classes = datasets.get(config.dataset).num_classes
    model = models.create(config.model, num_classes=classes, **model_overrides(config))
    doc = " ".join(load(REPO / "configs" / f"{name}.py").__doc__.split())
    assert f"{params:,} parameters" in doc
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                               train=False))
    assert sum(math.prod(x.shape) for x in jax.tree.leaves(shapes["params"])) == params


def test_a_recipes_measured_figure_is_the_one_in_readmes_results():
    """A docstring that claims a measured accuracy states README's figure for the recipe."""
    rows = [line for line in (REPO / "README.md").read_text().splitlines()
            if line.startswith("| ") and "%" in line]
    for path in CONFIGS:
        expected = load(path).__doc__.split("Expected:", 1)[1]
        if not re.search(r"\bmeasured [^.;]*\d{4}-\d\d-\d\d", expected):
            continue  # Not measured here: a published figure.
        figure = re.search(r"\d+\.\d+%", expected)[0]
        recipe_rows = [r for r in rows if f"`{path.name}`" in r.split("|")[2]]
        assert recipe_rows, f"README's results have no row for {path.name}"
        assert any(figure in r for r in recipe_rows), (
            f"{path.name}'s docstring expects {figure}; README's results say otherwise")
