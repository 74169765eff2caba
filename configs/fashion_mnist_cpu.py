"""Fashion-MNIST on a laptop CPU: the mini-ResNet at half width, 6 epochs.

The tutorial net (configs/fashion_mnist.py) at width_multiplier 0.5 (conv16,
2x16, 2x32/2, 2x64/2, dropout 0.3) costs a quarter of the FLOPs; AdamW with a
short warmup and cosine decay, label smoothing and random flips reach >= 91%
test accuracy in 6 epochs.

    python -m resnet_flax.data.build fashion_mnist --archives ../shared/data/fashion_mnist
    python -m resnet_flax.main --config configs/fashion_mnist_cpu.py --workdir runs/fm_cpu

Expected: 92.25% test accuracy, 13 min on a quiet 2-core CPU (measured from a fresh
clone on 2026-12-04; README's results table, BENCHMARKS.md#training-results).
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "fashion_mnist"
    c.model = "fashion_mnist_resnet"
    c.model_options.width_multiplier = 0.5
    c.random_flip = True
    c.optimizer = "adamw"
    c.lr = 2e-3
    c.weight_decay = 5e-4
    c.decay_bn_and_bias = False
    c.label_smoothing = 0.1
    c.schedule = "warmup_cosine"
    c.warmup_epochs = 0.5
    c.batch_size = 128
    c.num_epochs = 6
    c.checkpoint_every_steps = 500
    return c
