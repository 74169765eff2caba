"""CIFAR-10 ResNet-18, the widely used recipe (torchvision's ResNet-18 with a CIFAR stem).

A 3x3 stride-1 stem without max-pool (11,173,962 parameters), SGD momentum 0.9,
weight decay 5e-4, batch 128, lr 0.1 with cosine annealing over 200 epochs, pad-4
random crop + horizontal flip (the recipe of kuangliu/pytorch-cifar).

    python -m resnet_flax.data.build cifar10 --archives /path/to/folder/with/cifar-10-binary.tar.gz
    python -m resnet_flax.main --config configs/cifar10_resnet18.py --workdir runs/cifar10_r18

Expected: ~95% test accuracy (95.4% reported for this recipe). Not yet measured with
this code base: it needs a GPU and CIFAR-10, neither of which this project has had.
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "cifar10"
    c.model = "resnet18"
    c.model_options.stem = "cifar"
    c.crop_padding = 4
    c.random_flip = True
    c.optimizer = "sgd"
    c.lr = 0.1
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.schedule = "warmup_cosine"  # warmup_epochs 0: plain cosine annealing to 0.
    c.batch_size = 128
    c.num_epochs = 200
    c.checkpoint_every_steps = 2000
    c.best_metric = "test_accuracy"
    return c
