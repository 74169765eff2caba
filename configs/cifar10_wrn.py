"""CIFAR-10 Wide ResNet-28-10 (Zagoruyko & Komodakis 2016).

Pre-activation wide blocks with dropout 0.3 between their convs (36,479,194
parameters), SGD Nesterov momentum 0.9, weight decay 5e-4, batch 128, lr 0.1
multiplied by 0.2 at epochs 60, 120 and 160, 200 epochs, pad-4 random crop +
horizontal flip + Cutout of 16x16 squares (DeVries & Taylor 2017's WRN setting;
``--config.cutout_size=0`` is Zagoruyko & Komodakis' own augmentation).

    python -m resnet_flax.data.build cifar10 --archives /path/to/folder/with/cifar-10-binary.tar.gz
    python -m resnet_flax.main --config configs/cifar10_wrn.py --workdir runs/cifar10_wrn

Expected: with Cutout, 96.92% test accuracy (DeVries & Taylor, table 1: 3.08% +- 0.16
error); without it, the WRN paper's 96.11% with dropout (3.89% error, table 6; 96.00%
without dropout). Not yet measured with this code base: it needs a GPU and CIFAR-10.
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "cifar10"
    c.model = "wrn_28_10"
    c.crop_padding = 4
    c.random_flip = True
    c.cutout_size = 16
    c.optimizer = "sgd"
    c.lr = 0.1
    c.momentum = 0.9
    c.nesterov = True
    c.weight_decay = 5e-4
    c.schedule = "piecewise"
    c.lr_boundaries_epochs = (60, 120, 160)
    c.lr_decay_factor = 0.2
    c.batch_size = 128
    c.num_epochs = 200
    c.checkpoint_every_steps = 2000
    c.best_metric = "test_accuracy"
    return c
