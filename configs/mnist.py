"""MNIST with the Fashion-MNIST mini-ResNet at half width, Adam, 3 epochs.

    python -m resnet_flax.data.build mnist --archives ../shared/data/mnist
    python -m resnet_flax.main --config configs/mnist.py --workdir runs/mnist

Expected: not measured yet (no figure is claimed until a run records one in README's
results table).
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "mnist"
    c.model = "fashion_mnist_resnet"
    c.model_options.width_multiplier = 0.5
    c.optimizer = "adam"
    c.lr = 1e-3
    c.schedule = "warmup_cosine"
    c.warmup_epochs = 0.2
    c.batch_size = 128
    c.num_epochs = 3
    c.checkpoint_every_steps = 500
    return c
