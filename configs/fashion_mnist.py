"""Fashion-MNIST mini-ResNet (conv32, 2x32, 2x64/2, 2x128/2, dropout 0.3), Adam.

The tutorial recipe: Adam 1e-3, batch 64, 10 epochs, no augmentation.

    python -m resnet_flax.data.build fashion_mnist --archives ../shared/data/fashion_mnist
    python -m resnet_flax.main --config configs/fashion_mnist.py --workdir runs/fm

Expected: not yet measured with this code base (10 epochs at full width; meant for
a GPU). Its half-width CPU variant,
configs/fashion_mnist_cpu.py, reaches 92.22% in 6 epochs.
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "fashion_mnist"
    c.model = "fashion_mnist_resnet"
    c.optimizer = "adam"
    c.lr = 1e-3
    c.batch_size = 64
    c.num_epochs = 10
    c.checkpoint_every_steps = 1000
    return c
