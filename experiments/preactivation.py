"""Post-activation (v1) against pre-activation (v2) residual units."""

from experiments.claims import Ahead
from experiments.common import cpu_scale, gpu_scale, he_cifar, paper_epochs

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
    # Degradation's recipe (5,000 images, 5 epochs of warm-up) at quarter width and 20
    # epochs: ResNet-110's cost is what fits the four arms' 3 seeds in about 90 minutes.
    "cpu": cpu_scale(20, 5000, warmup_epochs=5.0,
                     **{"model_options.width_multiplier": 0.25}),
    # Both depths: the finding is that the gap grows with depth, so 110 must run.
    "gpu": gpu_scale(10),
    "paper": {"num_epochs": paper_epochs(), "train_subset": 0},
}
# The figure: each depth's training curves, v1 beside v2 (the paper's fig. 6).
PANELS = {f"depth {d}": [f"v1_resnet{d}", f"v2_resnet{d}"] for d in (56, 110)}
CLAIMS = [
    Ahead("v2 generalises better at depth 56", "v2_resnet56", "v1_resnet56"),
    Ahead("v2 generalises better at depth 110", "v2_resnet110", "v1_resnet110"),
    # Sec. 4.2: at depths of 100-odd layers v1's "training curve seems to suffer a little
    # bit at the beginning of training, but goes into a healthy status soon", and v2
    # "reaches slightly higher training loss at convergence": the ease shows early.
    Ahead("v2 trains more easily at the start at depth 110", "v2_resnet110",
          "v1_resnet110", "first_train_loss"),
]

# Said under the verdicts on a scale's page: what a reader needs beside them.
NOTES = {
    "cpu": "At this scale every arm underfits: its training error is about its test error "
           "(13-17%), and v2 trails v1 in training error too (2.2 points at depth 56 and "
           "2.6 at 110, against 2.6 and 3.3 in test error). So the test-error gap measures "
           "v2's slower fit of a net 4 channels wide in 780 iterations, not generalisation: "
           "He et al. 2016's gap is at convergence (64k iterations; v2 \"reaches slightly "
           "higher training loss at convergence\" yet lower test error). The test-error "
           "claims need nets that fit their training images below their test error; "
           "degradation's half-width 40-epoch recipe does (ResNet-56: 7.8% against 10.0%), "
           "and there the four arms' 3 seeds would take about 4 h on 2 cores. The "
           "start-of-training claim is the one this scale measures: v2's first epoch ends at "
           "about chance loss in all 3 seeds (2.23-2.32; ln 10 is 2.30), v1's from 2.09 to "
           "3.17.",
}


def base(dataset, scale):
    return he_cifar(dataset, epochs=paper_epochs())
