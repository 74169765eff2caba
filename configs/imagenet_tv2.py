"""ImageNet ResNet-50 with torchvision's V2 recipe, the one behind its IMAGENET1K_V2
weights. Expected: 80.858% top-1, torchvision's figure for those weights (not measured
with this code base: it needs ImageNet and a GPU pod).

From torchvision's references/classification (README, "ResNet50 V2", and train.py's
defaults): SGD momentum 0.9, lr 0.5 at batch 1024 (8 x 128), 600 epochs, cosine after
5 linear warm-up epochs starting at 0.01 of the lr, weight decay 2e-5 and none on the
norms (here none on any one-dimensional parameter: the norms and the head's bias),
label smoothing 0.1, mixup 0.2 or cutmix 1.0 (one of the two a batch), TrivialAugmentWide
(bilinear), random erasing 0.1, an EMA updated every 32 steps, repeated augmentation
x4, training crops of 176, evaluation at 224 after resizing to 232.

At another batch size the lr scales linearly (lr_base_batch), and the EMA's decay per
update follows torchvision's rule, ``1 - min(1, (1 - 0.99998) * batch * 32 / epochs)``:
``ema_decay_for(batch, epochs)`` below. Differences from the reference: its lr changes
once an epoch and here every step; its EMA restarts from the model through the warm-up
and here ramps up (train/state.py); its random draws are torch's, here numpy's.

    python -m resnet_flax.main --config configs/imagenet_tv2.py --workdir runs/imagenet_tv2
"""

from resnet_flax.config import default_config

EMA_DECAY, EMA_EVERY = 0.99998, 32


def ema_decay_for(batch: int, epochs: int) -> float:
    """torchvision's EMA decay per update for ``batch`` images a step and ``epochs``."""
    return 1.0 - min(1.0, (1.0 - EMA_DECAY) * batch * EMA_EVERY / epochs)


def get_config():
    c = default_config()
    c.dataset = "imagenet2012"
    c.input, c.input_workers = "stream", 32
    c.crop, c.crop_size, c.random_flip = "inception", 176, True
    c.eval_crop_size, c.eval_crop_fraction = 224, 224 / 232
    c.auto_augment, c.auto_augment_interpolation = "ta_wide", "bilinear"
    c.repeated_augment = 4
    c.random_erasing = 0.1
    c.mixup_alpha, c.cutmix_alpha = 0.2, 1.0
    c.label_smoothing = 0.1
    c.model = "resnet50"
    c.model_options.dtype = "bfloat16"
    c.optimizer, c.momentum = "sgd", 0.9
    c.batch_size = c.eval_batch_size = 1024
    c.lr, c.lr_base_batch = 0.5, 1024
    c.num_epochs = 600
    c.schedule, c.warmup_epochs, c.warmup_start_factor = "warmup_cosine", 5.0, 0.01
    c.weight_decay, c.decay_bn_and_bias = 2e-5, False
    c.ema_decay, c.ema_every_steps = ema_decay_for(c.batch_size, c.num_epochs), EMA_EVERY
    c.checkpoint_every_steps, c.keep_checkpoints = 1000, 2
    c.best_metric = "test_accuracy"
    return c
