"""Degradation: deeper plain nets train worse; deeper ResNets do not."""

from experiments.common import he_cifar, paper_epochs

TITLE = "Degradation: plain nets against ResNets by depth"
SOURCE = "He et al. 2015, Deep Residual Learning, fig. 6 (CIFAR-10)"
FINDING = ("plain-56 has higher training error than plain-20, while ResNet-56 has lower "
           "training error than ResNet-20.")
DEPTHS = (20, 32, 44, 56)
ARMS = {**{f"plain{d}": {"model": f"plain_resnet{d}"} for d in DEPTHS},
        **{f"resnet{d}": {"model": f"resnet{d}"} for d in DEPTHS}}
SCALES = {
    # 5000 training images (a fixed draw), 6 epochs, depths 20 and 56.
    "quick": {"num_epochs": 6, "lr_boundaries_epochs": (4, 5), "train_subset": 5000,
              "arms": ["plain20", "plain56", "resnet20", "resnet56"]},
    "paper": {"num_epochs": paper_epochs(), "train_subset": 0},
}


def base(dataset, scale):
    return he_cifar(dataset, epochs=paper_epochs())
