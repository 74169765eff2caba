"""ImageNet-1k's class names in the order of the weights' 1000 outputs.

The order is that of the WordNet ids in TFDS's ``imagenet2012/labels.txt`` (sorted ids,
the index every torchvision and timm classifier uses). A readable name per id comes
from ``imagenet_lemmas.tsv`` beside this file: WordNet 3.0's lemmas of the 1000 synsets,
as timm ships them (``timm/data/_info/imagenet_synset_to_lemma.txt``); the first lemma
is the name, with the id added where two classes share it ("crane", "maillot")."""

from __future__ import annotations

import collections
import functools
import importlib.util
import pathlib

LEMMAS = pathlib.Path(__file__).with_name("imagenet_lemmas.tsv")


def tfds_wordnet_ids() -> list[str]:
    """The 1000 WordNet ids of TFDS's ``imagenet2012`` labels (read without importing
    TFDS, which is slow to import)."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    root = pathlib.Path(next(iter(spec.submodule_search_locations)))
    text = (root / "datasets" / "imagenet2012" / "labels.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


@functools.cache
def class_names() -> tuple[str, ...]:
    lemmas = dict(line.split("\t", 1) for line in LEMMAS.read_text().splitlines())
    ids = tfds_wordnet_ids()
    firsts = [lemmas[i].split(", ")[0] for i in ids]
    shared = {name for name, n in collections.Counter(firsts).items() if n > 1}
    return tuple(f"{name} ({i})" if name in shared else name for name, i in zip(firsts, ids))
