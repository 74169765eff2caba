"""Fashion-MNIST, fast to 94%: the mini-ResNet with airbench's training tricks.

The half-width tutorial net (configs/fashion_mnist_cpu.py's) trained with what
makes airbench fast: the dataset on the device with random crops (pad 2) and
flips inside the jitted step, Nesterov SGD at batch 512 with label smoothing, a
short warmup then cosine decay, no weight decay on BN and biases, an EMA of the
weights, and flip test-time augmentation. On a GPU add
``--config.model_options.dtype=bfloat16``.

    python -m resnet_flax.data.build fashion_mnist --archives ../shared/data/fashion_mnist
    python -m resnet_flax.main --config configs/fashion_mnist_fast.py --workdir runs/fm_fast

Expected: 94.10% test accuracy (EMA + flip TTA) after 20 epochs, 52 min on a quiet
2-core CPU in float32 (measured 2026-11-22; README's results table; the time to each
accuracy: BENCHMARKS.md#fashion-mnist-time-to-accuracy-cpu).
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "fashion_mnist"
    c.model = "fashion_mnist_resnet"
    c.model_options.width_multiplier = 0.5
    c.crop_padding = 2
    c.random_flip = True
    c.optimizer = "sgd"
    c.nesterov = True
    c.momentum = 0.9
    c.lr = 0.4
    c.weight_decay = 5e-4
    c.decay_bn_and_bias = False
    c.label_smoothing = 0.1
    c.schedule = "warmup_cosine"
    c.warmup_epochs = 1.0
    c.batch_size = 512
    c.num_epochs = 20
    c.ema_decay = 0.99  # About one epoch (117 steps) of averaging.
    c.tta_flip = True
    c.checkpoint_every_steps = 500
    return c
