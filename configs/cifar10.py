"""CIFAR-10 ResNet-20, He et al. 2015 sec. 4.2 recipe.

SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and
48k iterations, stopped at 64k (= epochs 82, 123, 164 at 390 steps/epoch);
pad-4 random crop + horizontal flip; option-A shortcuts. Pick another depth with
--config.model=resnet56 (or resnet32/44/110).

    python -m resnet_flax.data.build cifar10 --archives /path/to/folder/with/cifar-10-binary.tar.gz
    python -m resnet_flax.main --config configs/cifar10.py --workdir runs/cifar10_r20

Expected: the paper reports 91.25% test accuracy for ResNet-20 (8.75% error,
table 6; 93.03% for ResNet-56). Not yet reproduced with this code base: 164 epochs
are ~2 PFLOP, about 14 hours on a 2-core CPU at 40 GFLOP/s; see README's results.
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "cifar10"
    c.model = "resnet20"
    c.crop_padding = 4
    c.random_flip = True
    c.optimizer = "sgd"
    c.lr = 0.1
    c.momentum = 0.9
    c.weight_decay = 1e-4
    c.schedule = "piecewise"
    c.lr_boundaries_epochs = (82, 123)
    c.batch_size = 128
    c.num_epochs = 164
    c.checkpoint_every_steps = 2000
    return c
