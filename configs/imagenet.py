"""ImageNet (ILSVRC2012) ResNet-50: the standard 90-epoch recipe, streamed from disk.

torchvision's ResNet-50 (25,557,032 parameters), SGD with Nesterov momentum 0.9,
global batch 1024 at lr 0.1 x batch / 256 with 5 epochs of linear warmup then cosine
decay, label smoothing 0.1, weight decay 5e-5 on the convolution and dense kernels
only (not BatchNorm or biases), bfloat16 compute, 90 epochs. Input: the stream path
(Grain reading array_record, 32 worker processes per host): Inception random-resized
crop to 224 + horizontal flip for training; resize to 256, centre 224 for evaluation.

    # Put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in one folder, then:
    python -m resnet_flax.data.build imagenet2012 --archives /path/to/folder
    python -m resnet_flax.main --config configs/imagenet.py --workdir runs/imagenet_r50

On several hosts, run the same command on each (SLURM and TPU pods are detected; see
docs/cluster.md). Expected: ~76-77% top-1 on the validation set after 90
epochs (Goyal et al. 2017: 76.3% at batch 8k; this recipe's reference implementations
report 76-77%). Not yet measured with this code base: it needs ImageNet and a GPU/TPU
pod, neither of which this project has had.
"""

from resnet_flax.config import default_config


def get_config():
    c = default_config()
    c.dataset = "imagenet2012"
    c.input = "stream"
    c.input_workers = 32  # Per host; ~1 core feeds ~100 images/s (BENCHMARKS.md).
    c.crop = "inception"
    c.crop_size = 224
    c.random_flip = True
    c.model = "resnet50"
    c.model_options.dtype = "bfloat16"
    c.optimizer = "sgd"
    c.momentum = 0.9
    c.nesterov = True
    c.batch_size = 1024
    c.eval_batch_size = 1024
    c.lr = 0.1
    c.lr_base_batch = 256  # Peak lr 0.4 at batch 1024 (the linear scaling rule).
    c.schedule = "warmup_cosine"
    c.warmup_epochs = 5.0
    c.label_smoothing = 0.1
    c.weight_decay = 5e-5
    c.decay_bn_and_bias = False
    c.num_epochs = 90
    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 2
    c.best_metric = "test_accuracy"
    return c
