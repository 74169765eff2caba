"""Degradation: deeper plain nets train worse; deeper ResNets do not."""

from experiments.claims import Ahead
from experiments.common import cpu_scale, gpu_scale, he_cifar, paper_epochs

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
    # 5,000 images for 40 epochs (1,560 iterations) at half width, every arm warmed up
    # linearly over its first 5 epochs: without it ResNet-56 loses its first epoch at lr
    # 0.1 (He et al. warm ResNet-110 up "until the training error is below 80%"). Fig. 6
    # parts ResNet-56 from ResNet-20 late in training, so the epochs buy more than width:
    # 20 epochs at full width had ResNet-56 behind, 40 at half width ahead.
    "cpu": cpu_scale(40, 5000, arms=["plain20", "plain56", "resnet20", "resnet56"],
                     warmup_epochs=5.0, **{"model_options.width_multiplier": 0.5}),
    # The four nets of depth 20 and 56 on the whole training set: the paper's curves part
    # within its first few thousand iterations, and 20 epochs are 9,360.
    "gpu": gpu_scale(20, arms=["plain20", "plain56", "resnet20", "resnet56"]),
    "paper": {"num_epochs": paper_epochs(), "train_subset": 0},
}
# The figure: fig. 6's panels, plain nets beside ResNets.
PANELS = {"plain networks": [f"plain{d}" for d in DEPTHS],
          "ResNets": [f"resnet{d}" for d in DEPTHS]}
CLAIMS = [
    Ahead("the deeper plain net trains worse", "plain20", "plain56", "final_train_error"),
    Ahead("the deeper ResNet trains better", "resnet56", "resnet20", "final_train_error"),
    Ahead("at depth 56 the ResNet trains better than its plain twin", "resnet56", "plain56",
          "final_train_error"),
]


def base(dataset, scale):
    return he_cifar(dataset, epochs=paper_epochs())
