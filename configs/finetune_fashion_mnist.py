"""Fine-tune torchvision's ImageNet ResNet-18 on Fashion-MNIST (the transfer pattern).

The 28x28 grey images are resized on the device to 64x64 and repeated to three
channels, then normalised with ImageNet's statistics, which is what the pretrained
net expects. A new 10-class head replaces ImageNet's; the stem stays fixed (its
BatchNorm statistics too), and the backbone learns at a tenth of the head's rate.
Crops and flips as for training from scratch; SGD Nesterov, cosine, 5 epochs.

Name the weights (fetched once into the Hugging Face cache; ``pip install -e
'.[pretrained]'``; ``python -m resnet_flax.summary --pretrained`` lists the names), or
give a ``.safetensors``/``.pth`` file in torchvision's layout:

    python -m resnet_flax.data.build fashion_mnist --archives ../shared/data/fashion_mnist
    python -m resnet_flax.main --config configs/finetune_fashion_mnist.py \
        --workdir runs/fm_finetune --config.init_from=resnet18.tv_in1k

``--config.init_from=runs/other`` starts from another run's latest checkpoint instead
(same model), and ``--config.freeze=stem,stage1,stage2`` fixes more of the backbone.

Expected: unmeasured (no ImageNet weights here). Fine-tuned ImageNet ResNet-18s are
reported at about 94-95% test accuracy on Fashion-MNIST; without --config.init_from
the same recipe trains the ResNet-18 from scratch.
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "fashion_mnist"
    c.model = "resnet18"  # torchvision's layout: its state dict loads as is.
    c.input_size = 64
    c.input_channels = 3
    c.normalization = "imagenet"
    c.init_from = ""  # resnet18.tv_in1k (by name), a weights file, or a run's workdir.
    c.init_head = "new"  # 10 classes, not ImageNet's 1000.
    c.freeze = "stem"
    c.backbone_lr_multiplier = 0.1
    c.crop_padding = 4
    c.random_flip = True
    c.optimizer = "sgd"
    c.nesterov = True
    c.momentum = 0.9
    c.lr = 0.05
    c.weight_decay = 1e-4
    c.decay_bn_and_bias = False
    c.schedule = "warmup_cosine"
    c.warmup_epochs = 0.5
    c.batch_size = 128
    c.num_epochs = 5
    return c
