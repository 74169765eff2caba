"""BatchNorm, GroupNorm or none, and zero-init of each block's last norm scale, on a deep
plain net and its residual twin."""

from experiments.claims import Ahead, Close
from experiments.common import gpu_scale, he_cifar, paper_epochs

TITLE = "Normalization: BatchNorm, GroupNorm, none; zero-init of the last norm scale"
SOURCE = ("Ioffe & Szegedy 2015; Wu & He 2018 (GroupNorm); Goyal et al. 2017 (zero-init "
          "residual)")
FINDING = ("a deep net without normalisation trains badly or diverges, more so without "
           "shortcuts; GroupNorm is close to BatchNorm; zero-init helps early training.")
_NORMS = {"bn": {"model_options.norm": "batch"},
          "bn_zero": {"model_options.norm": "batch", "model_options.zero_init_residual": True},
          "gn": {"model_options.norm": "group", "model_options.norm_groups": 8},
          "gn_zero": {"model_options.norm": "group", "model_options.norm_groups": 8,
                      "model_options.zero_init_residual": True},
          "none": {"model_options.norm": "none", "lr": 0.01}}
ARMS = {f"{net}_{norm}": {"model_options.plain": net == "plain", **o}
        for net in ("plain", "resnet") for norm, o in _NORMS.items()
        if not (net == "plain" and norm.endswith("zero"))}  # A plain net has no residual.
SCALES = {
    "quick": {"num_epochs": 4, "lr_boundaries_epochs": (3,), "train_subset": 3000,
              "model": "resnet20"},
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
]


def base(dataset, scale):
    c = he_cifar(dataset, epochs=paper_epochs())
    c.model = "resnet56"  # The quick scale's overrides make it resnet20.
    return c
