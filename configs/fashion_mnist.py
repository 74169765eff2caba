"""Fashion-MNIST mini-ResNet (conv32, 2x32, 2x64/2, 2x128/2, dropout 0.3), Adam.

The tutorial recipe: Adam 1e-3, batch 64, 10 epochs, no augmentation.

    python -m resnet_flax.data.build fashion_mnist --archives ../shared/data/fashion_mnist
    python -m resnet_flax.main --config configs/fashion_mnist.py --workdir runs/fm

Expected: 92.52% test accuracy after 10 epochs, 38.1 s of training on one H200
(measured 2026-12-04; README's results table, BENCHMARKS.md#gpu). Its half-width CPU
variant, configs/fashion_mnist_cpu.py, reaches 92.25% in 6 epochs.
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
