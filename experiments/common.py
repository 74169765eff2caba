"""The base every experiment starts from: He et al.'s CIFAR recipe (sec. 4.2), on any of
the small datasets."""

from __future__ import annotations

from resnet_flax.config import default_config


def he_cifar(dataset: str, epochs: int, subset: int = 0):
    """SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 50% and 75%
    of training (the paper's 32k/48k of 64k iterations), crop + flip (no flip on MNIST)."""
    c = default_config()
    c.dataset = dataset
    c.model = "resnet20"
    c.optimizer, c.lr, c.momentum, c.weight_decay = "sgd", 0.1, 0.9, 1e-4
    c.batch_size = 128
    c.num_epochs = epochs
    c.schedule = "piecewise"
    c.lr_boundaries_epochs = (epochs // 2, epochs * 3 // 4)
    c.crop_padding = 4 if dataset.startswith("cifar") else 2
    c.random_flip = dataset != "mnist"
    c.train_subset = subset
    c.progress_bar = False
    c.checkpoint_every_steps = 1000
    return c


def paper_epochs(iterations: int = 64_000, batch: int = 128, train_size: int = 50_000) -> int:
    """The paper's 64k iterations in epochs of a 50k-image training set (164)."""
    return round(iterations * batch / train_size)
