"""BatchNorm, GroupNorm or none, and zero-init of each block's last norm scale, on a deep
plain net and its residual twin; and BatchNorm's error as its batch shrinks."""

from experiments.claims import Ahead, Close
from experiments.common import cpu_scale, gpu_scale, he_cifar, paper_epochs

TITLE = "Normalization: BatchNorm, GroupNorm, none; zero-init of the last norm scale"
SOURCE = ("Ioffe & Szegedy 2015; Wu & He 2018 (GroupNorm, fig. 1); Goyal et al. 2017 "
          "(zero-init residual)")
FINDING = ("a deep net without normalisation trains badly or diverges, more so without "
           "shortcuts; GroupNorm is close to BatchNorm, and ahead of it when BatchNorm's "
           "batch is small (ResNet-50 at 2 images a GPU: 24.1% against 34.7% error); "
           "zero-init helps early training.")
_NORMS = {"bn": {"model_options.norm": "batch"},
          "bn_zero": {"model_options.norm": "batch", "model_options.zero_init_residual": True},
          "gn": {"model_options.norm": "group"},
          "gn_zero": {"model_options.norm": "group", "model_options.zero_init_residual": True},
          "none": {"model_options.norm": "none", "lr": 0.01}}
ARMS = {f"{net}_{norm}": {"model_options.plain": net == "plain", **o}
        for net in ("plain", "resnet") for norm, o in _NORMS.items()
        if not (net == "plain" and norm.endswith("zero"))}  # A plain net has no residual.
# Wu & He, sec. 4.1: "We evaluate batch sizes of 32, 16, 8, 4, 2 images per GPU. In all
# cases, the BN mean and variance are computed within each GPU and not synchronized."
# Here the step's batch stays 128 and BatchNorm's statistics span slices of it
# (bn_batch), as each GPU's do; Wu & He scale the lr with their batch, a fixed one keeps it.
BN_BATCHES = (32, 16, 8, 4, 2)
ARMS.update({f"resnet_bn_{n}": {"model_options.norm": "batch", "model_options.bn_batch": n}
             for n in BN_BATCHES})
# The second figure: error against the images BatchNorm's statistics span. GroupNorm's
# are each image's own, so its one run stands at every batch.
BATCH_SWEEP = {"BatchNorm": {128: "resnet_bn", **{n: f"resnet_bn_{n}" for n in BN_BATCHES}},
               "GroupNorm (per image: one run)": {n: "resnet_gn" for n in (128, *BN_BATCHES)}}
SCALES = {
    "quick": {"num_epochs": 4, "lr_boundaries_epochs": (3,), "train_subset": 3000,
              "model": "resnet20"},
    # Part 1's recipe (5,000 images, 5 epochs of warm-up, quarter width) on ResNet-20 for
    # 20 epochs, all 13 arms. GroupNorm keeps the full-width net's 2, 4 and 8 channels a
    # group (Wu & He's ResNet-50 has 2 to 64): 2 groups at quarter width.
    "cpu": cpu_scale(20, 5000, warmup_epochs=5.0, model="resnet20",
                     **{"model_options.width_multiplier": 0.25,
                        "model_options.norm_groups": 2}),
    # Depth 32, deep enough for a plain net without norms to struggle; every arm. In
    # float32: whether a net without normalisation diverges is part of the finding.
    "gpu": gpu_scale(10, bfloat16=False, model="resnet32"),
    "paper": {"num_epochs": paper_epochs(), "train_subset": 0},
}
CLAIMS = [
    Ahead("without normalisation the ResNet trains worse", "resnet_bn", "resnet_none",
          "final_train_error"),
    Ahead("without normalisation shortcuts matter more", "resnet_none", "plain_none",
          "final_train_error"),
    Close("GroupNorm is within a point of BatchNorm", "resnet_gn", "resnet_bn", 0.01),
    Ahead("zero-init helps early training", "resnet_bn_zero", "resnet_bn",
          "first_train_loss"),
    # Wu & He, sec. 4.1: BatchNorm's error rises from 23.6% at 32 images a GPU to 34.7% at
    # 2; "GN's behavior is more stable and insensitive to the batch size", and "in the
    # case of a batch size of 2, GN has 10.6% lower error rate than its BN counterpart".
    Ahead("BatchNorm's error rises as its batch shrinks from 32 images to 2",
          "resnet_bn_32", "resnet_bn_2"),
    Ahead("at 2 images a batch GroupNorm beats BatchNorm", "resnet_gn", "resnet_bn_2"),
]

# Said under the verdicts on a scale's page: what a reader needs beside them.
NOTES = {
    "cpu": "BatchNorm's batch in the batch sweep is a slice of each step's 128 images "
           "(`model_options.bn_batch`), normalised by its own statistics as each GPU's "
           "images are in Wu & He's runs; they also scale the lr with their total batch, "
           "which stays 128 here. GroupNorm has 2 groups at this quarter width: the "
           "full-width net's 2, 4 and 8 channels a group.\n\n"
           "Without normalisation every ResNet trained (34.0%, 33.9% and 50.8% final "
           "training error) and the plain net trained in one seed of three (27.8%) and "
           "stayed at chance in two (89.3%): the paper's order, but a mean over an "
           "all-or-nothing outcome spreads over both, so the verdict stays within the "
           "spread.\n\n"
           "GroupNorm fits more slowly than BatchNorm here (23.8 +- 2.0% final training "
           "error against 15.5 +- 0.3%), so it trails BatchNorm even over slices of 2 "
           "images. Wu & He compare them after 100 ImageNet epochs, where GroupNorm's "
           "training error is below BatchNorm's (sec. 4.1, fig. 4); at a quarter of the "
           "width and 20 epochs every arm underfits (its training error is about its test "
           "error), and the gap measures how fast each fits, not what Wu & He measure.\n\n"
           "The first epoch is a fifth of the 5-epoch warm-up, and both arms end it about "
           "chance (2.21-2.38 against ln 10 = 2.30): it cannot tell their early training "
           "apart. After it, zero-init stays behind to the end (22.6 +- 0.7% final "
           "training error against 15.5 +- 0.3%); Goyal et al. state the finding for "
           "ResNet-50 on ImageNet at large batches.",
}


def base(dataset, scale):
    c = he_cifar(dataset, epochs=paper_epochs())
    c.model = "resnet56"  # The quick scale's overrides make it resnet20.
    c.model_options.norm_groups = 8  # GroupNorm's; the other norms have no groups.
    return c
