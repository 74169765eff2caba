"""Post-activation (v1) against pre-activation (v2) residual units."""

from experiments.common import he_cifar, paper_epochs

TITLE = "Pre-activation: v1 against v2 residual units"
SOURCE = "He et al. 2016, Identity Mappings in Deep Residual Networks, table 3"
FINDING = ("pre-activation units train more easily and generalise better, the more so the "
           "deeper the net (ResNet-110 6.61% -> 6.37% test error on CIFAR-10).")
ARMS = {**{f"v1_resnet{d}": {"model": f"resnet{d}"} for d in (56, 110)},
        **{f"v2_resnet{d}": {"model": f"resnet{d}", "model_options.preact": True}
           for d in (56, 110)}}
SCALES = {
    "quick": {"num_epochs": 6, "lr_boundaries_epochs": (4, 5), "train_subset": 5000,
              "arms": ["v1_resnet56", "v2_resnet56"]},
    "paper": {"num_epochs": paper_epochs(), "train_subset": 0},
}


def base(dataset, scale):
    return he_cifar(dataset, epochs=paper_epochs())
