"""Imagenette (10 easy ImageNet classes, fast.ai) at 160 px: the ImageNet pipeline at a
size one GPU trains in minutes, and the stream path's smallest real workload.

ResNet-18 (torchvision's), the imagenet.py recipe scaled down: SGD Nesterov, batch 256,
lr 0.1 x batch / 256 with 2 warmup epochs then cosine, label smoothing 0.1, weight decay
5e-5 (not on BatchNorm or biases), 40 epochs; Inception crop to 128 + flip for training,
resize to 146 and centre 128 for evaluation (0.875).

    # Download imagenette2-160.tgz (github.com/fastai/imagenette) into a folder, then:
    python -m resnet_flax.data.build imagenette/160px-v2 --archives /path/to/folder
    python -m resnet_flax.main --config configs/imagenette.py --workdir runs/imagenette

Expected: fast.ai's leaderboard reports 85-92% top-1 at 128 px after 5-20 epochs
with their XResNet-50 and its tricks; a plain ResNet-18 with this recipe should land
near the lower end. Not yet measured with this code base (no Imagenette here).
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "imagenette/160px-v2"
    c.input = "stream"
    c.input_workers = 8
    c.crop = "inception"
    c.crop_size = 128
    c.random_flip = True
    c.model = "resnet18"
    c.optimizer = "sgd"
    c.momentum = 0.9
    c.nesterov = True
    c.batch_size = 256
    c.eval_batch_size = 500
    c.lr = 0.1
    c.lr_base_batch = 256
    c.schedule = "warmup_cosine"
    c.warmup_epochs = 2.0
    c.label_smoothing = 0.1
    c.weight_decay = 5e-5
    c.decay_bn_and_bias = False
    c.num_epochs = 40
    c.best_metric = "test_accuracy"
    return c
