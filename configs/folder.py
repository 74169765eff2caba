"""Your own images: a folder with one subfolder per class, fine-tuned from ImageNet
weights (the usual start for a few thousand images of anything).

    python -m resnet_flax.data.build folder:/data/flowers      # once: checks every file
    python -m resnet_flax.main --config configs/folder.py --workdir runs/flowers \
        --config.dataset=folder:/data/flowers --config.init_from=resnet50.tv2_in1k

The folder holds train/<class>/ and val/<class>/ (or test/), or only <class>/ folders, of
which the build holds out 10% of each class (seeded, recorded). Classes are indexed in
sorted folder order, as torchvision's ImageFolder does. Images of any size are read by
the stream input: Inception's crop to 224 and flips for training, resize to 256 and the
centre 224 for evaluation, with ImageNet's normalisation (what the weights expect).
Without --config.init_from the same recipe trains from scratch. ``--config.model`` must
fit the weights (``resnet50`` here; ``resnet18`` with ``resnet18.tv_in1k``).

Expected: depends on your images; no figure is claimed for this recipe.
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "folder:/path/to/your/images"
    c.input = "stream"
    c.input_workers = 8
    c.crop = "inception"
    c.crop_size = 224
    c.random_flip = True
    c.normalization = "imagenet"
    c.model = "resnet50"
    c.init_from = ""  # resnet50.tv2_in1k (by name), a weights file, or a run's workdir.
    c.init_head = "new"  # Your classes, not ImageNet's 1000.
    c.freeze = "stem"
    c.backbone_lr_multiplier = 0.1
    c.optimizer = "sgd"
    c.nesterov = True
    c.momentum = 0.9
    c.lr = 0.01
    c.weight_decay = 1e-4
    c.decay_bn_and_bias = False
    c.schedule = "warmup_cosine"
    c.warmup_epochs = 1.0
    c.label_smoothing = 0.1
    c.batch_size = 64
    c.eval_batch_size = 100
    c.num_epochs = 10
    c.best_metric = "test_accuracy"
    return c
