"""The catalogue of weights by name: every entry names a registry model whose variables
map one to one onto the torch layout its weights come in, and docs/models.md shows it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO
from flax import traverse_util

from resnet_flax import models
from resnet_flax.models import torch_weights
from resnet_flax.pretrained import catalogue, imagenet

torch = pytest.importorskip("torch")


def torch_shapes(model_name: str) -> dict[str, tuple[int, ...]]:
    import torch_models

    with torch.device("meta"):  # Shapes only: no memory for ResNet-152's weights.
        reference = torch_models.REFERENCES[model_name]()
    return {k: tuple(v.shape) for k, v in reference.state_dict().items()
            if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("model_name", sorted({w.model for w in catalogue.CATALOGUE.values()}))
def test_every_catalogued_model_maps_onto_its_torch_layout_key_for_key(model_name):
    model = models.create(model_name)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)),
                                               train=False))
    expected = torch_shapes(model_name)
    seen = {}
    for (collection, *path), leaf in traverse_util.flatten_dict(dict(shapes)).items():
        avg_down = model.shortcut is models.AvgDownShortcut
        key = torch_weights.torch_key(tuple(path), collection, avg_down)
        shape = expected[key]
        if len(shape) == 4:
            shape = (shape[2], shape[3], shape[1], shape[0])
        elif len(shape) == 2:
            shape = shape[::-1]
        assert shape == leaf.shape, key
        seen[key] = True
    assert set(seen) == set(expected)


def test_every_entry_names_a_registry_model_and_its_published_figures():
    for weights in catalogue.CATALOGUE.values():
        assert weights.model in models.names(), weights.name
        assert weights.hub_id == "timm/" + weights.name
        assert 60 < weights.top1 < weights.top5 < 100
        assert weights.size == models.spec(weights.model).input_shape[0]
        assert weights.source != weights.hub_id, f"{weights.name}: no source for its tag"


def test_docs_show_the_catalogue_table_as_the_summary_command_prints_it():
    assert catalogue.table() in (REPO / "docs" / "models.md").read_text()


def test_imagenet_names_follow_tfds_wordnet_ids_and_are_unique():
    names = imagenet.class_names()
    assert len(names) == len(set(names)) == 1000
    assert imagenet.tfds_wordnet_ids()[0] == "n01440764" and names[0] == "tench"
    assert names[np.searchsorted(imagenet.tfds_wordnet_ids(), "n04592741")] == "wing"
