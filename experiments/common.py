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


# A gpu scale's runs checkpoint every this many steps: two epochs of the full 60,000
# images at batch 128, so that whole-epoch chunks of steps (below) are not cut.
GPU_CHECKPOINT_STEPS = 936


def gpu_scale(epochs: int, arms: list[str] | None = None, bfloat16: bool = True,
              **overrides) -> dict:
    """A ``gpu`` scale: the whole training set for ``epochs`` epochs, lr divided by 10
    at 50% and 75%, an epoch's steps per dispatch (a ResNet-20 step is about a
    millisecond of GPU work: the host's dispatch would bound it), bfloat16 activations
    unless the finding is about numerics."""
    scale = {"num_epochs": epochs, "lr_boundaries_epochs": (epochs // 2, epochs * 3 // 4),
             "train_subset": 0, "steps_per_dispatch": 1000,
             "checkpoint_every_steps": GPU_CHECKPOINT_STEPS,
             **({"model_options.dtype": "bfloat16"} if bfloat16 else {}), **overrides}
    if arms is not None:
        scale["arms"] = arms
    return scale


def cpu_scale(epochs: int, train_images: int, test_images: int = 2000,
              arms: list[str] | None = None, **overrides) -> dict:
    """A ``cpu`` scale: a fixed draw of ``train_images`` for ``epochs`` epochs, lr divided by
    10 at 50% and 75%, each epoch evaluated on a fixed draw of ``test_images`` (the whole
    test set would cost as much as the training), float32 on 2 CPU cores."""
    scale = {"num_epochs": epochs, "lr_boundaries_epochs": (epochs // 2, epochs * 3 // 4),
             "train_subset": train_images, "test_subset": test_images, **overrides}
    if arms is not None:
        scale["arms"] = arms
    return scale
