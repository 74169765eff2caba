"""Shortcut options A (zero-padding), B (projections where the shape changes) and C
(projections everywhere)."""

from experiments.claims import Ahead, Close
from experiments.common import cpu_scale, gpu_scale, he_cifar, paper_epochs

TITLE = "Shortcuts: options A, B and C"
SOURCE = "He et al. 2015, table 3 (ImageNet; here on the CIFAR nets)"
FINDING = "B is slightly better than A, and C marginally better than B; the differences are small."
# Option A is the CIFAR nets' own shortcut, left unset: its runs are degradation's, copied.
ARMS = {f"resnet{d}_{o}": {"model": f"resnet{d}",
                           **({"model_options.shortcut": o} if o != "A" else {})}
        for d in (20, 56) for o in "ABC"}
SCALES = {
    "quick": {"num_epochs": 6, "lr_boundaries_epochs": (4, 5), "train_subset": 5000,
              "arms": ["resnet20_A", "resnet20_B", "resnet20_C"]},
    # Degradation's cpu recipe (5,000 images, 40 epochs at half width, 5 of warm-up);
    # depth 56 with A and B for the claim at that depth.
    "cpu": cpu_scale(40, 5000, arms=["resnet20_A", "resnet20_B", "resnet20_C", "resnet56_A",
                                     "resnet56_B"], warmup_epochs=5.0,
                     **{"model_options.width_multiplier": 0.5}),
    # ResNet-20 only, long enough to near convergence: the finding is about final
    # error, and its differences are small, so seeds matter more than depth.
    "gpu": gpu_scale(40, arms=["resnet20_A", "resnet20_B", "resnet20_C"]),
    "paper": {"num_epochs": paper_epochs(), "train_subset": 0},
}
CLAIMS = [
    Ahead("B is better than A", "resnet20_B", "resnet20_A"),
    Ahead("C is better than B", "resnet20_C", "resnet20_B"),
    Ahead("B is better than A at depth 56", "resnet56_B", "resnet56_A"),
    # "the small differences among A/B/C": 25.03, 24.52 and 24.19% top-1 error, A and C
    # 0.84 points apart.
    Close("A, B and C are within a point (A against C, the furthest apart)", "resnet20_A",
          "resnet20_C", 0.01),
]

# Said under the verdicts on a scale's page: what a reader needs beside them.
NOTES = {
    "cpu": "Why C may trail B on these nets: He et al. 2016 (Identity Mappings, sec. 3.1 "
           "and table 1) found that 1x1 convolutional shortcuts on every unit, option C, "
           "impede signal propagation when many residual units are stacked: ResNet-110 on "
           "CIFAR-10 reached 12.22% test error with them against 6.61% with identity "
           "shortcuts, its training error higher too. Table 3's small gain for C was on "
           "ImageNet's ResNet-34; the claim stays that paper's.",
}


def base(dataset, scale):
    return he_cifar(dataset, epochs=paper_epochs())
