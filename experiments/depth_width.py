"""Depth against width: CIFAR ResNets and WRN-16-k, accuracy against size and compute."""

from experiments.claims import Ahead
from experiments.common import cpu_scale, gpu_scale, he_cifar

TITLE = "Depth and width: test error against parameters and MACs"
SOURCE = "He et al. 2015 (ResNet-20..110); Zagoruyko & Komodakis 2016 (WRN-16-k)"
FINDING = ("widening is a more efficient use of parameters than deepening: WRN-16-4 beats "
           "ResNet-110 (4.97% vs 6.43% test error on CIFAR-10) and trains faster.")
PLOT = "scatter"
# Zagoruyko & Komodakis weigh depth against width with WRNs without dropout (sec. 3,
# "Width of residual blocks") and study dropout apart, where on CIFAR-10 WRN-16-4 does
# better without it (table 6): the WRN arms drop it, so the ResNets face the WRN alone.
ARMS = {**{f"resnet{d}": {"model": f"resnet{d}"} for d in (20, 32, 44, 56, 110)},
        **{f"wrn_16_{k}": {"model": f"wrn_16_{k}", "model_options.block_dropout": 0.0}
           for k in (1, 2, 4, 8)}}
SCALES = {
    "quick": {"num_epochs": 6, "lr_boundaries_epochs": (4, 5), "train_subset": 5000,
              "arms": ["resnet20", "resnet56", "wrn_16_1", "wrn_16_2"]},
    # WRN's schedule: 200 epochs, lr x0.2 at 60/120/160, weight decay 5e-4, Nesterov.
    "paper": {"num_epochs": 200, "lr_boundaries_epochs": (60, 120, 160),
              "lr_decay_factor": 0.2, "weight_decay": 5e-4, "nesterov": True,
              "train_subset": 0},
    # The gpu scale's six arms at quarter width on part 1's 5,000 images, WRN's schedule
    # compressed to 20 epochs (lr x0.2 at 30%, 60% and 80%) after 3 epochs of warm-up
    # (He et al. warm ResNet-110 up); WRN-16-8 (74 M MACs at this width) does not fit.
    "cpu": cpu_scale(20, 5000, arms=["resnet20", "resnet56", "resnet110", "wrn_16_1",
                                     "wrn_16_2", "wrn_16_4"], lr_boundaries_epochs=(6, 12, 16),
                     lr_decay_factor=0.2, weight_decay=5e-4, nesterov=True, warmup_epochs=3.0,
                     **{"model_options.width_multiplier": 0.25}),
    # Three depths and three widths, WRN's schedule and regularisation compressed to
    # 8 epochs; WRN-16-8 (4 times WRN-16-4's compute) does not fit.
    "gpu": gpu_scale(8, arms=["resnet20", "resnet56", "resnet110", "wrn_16_1", "wrn_16_2",
                              "wrn_16_4"], lr_boundaries_epochs=(2, 5, 6),
                     lr_decay_factor=0.2, weight_decay=5e-4, nesterov=True),
}
CLAIMS = [
    Ahead("WRN-16-4 beats ResNet-110", "wrn_16_4", "resnet110"),
    Ahead("WRN-16-2 beats ResNet-56, at fewer parameters and MACs", "wrn_16_2", "resnet56"),
]


# Said under the verdicts on a scale's page: what a reader needs beside them.
NOTES = {
    "cpu": "The WRN arms train without dropout, as in Zagoruyko & Komodakis's comparison "
           "of depth and width. With the 0.3 dropout between their convolutions, seed 0 "
           "ended at 23.60% (WRN-16-2) and 18.05% (WRN-16-4), behind both ResNets: at a "
           "quarter of the width and 20 epochs every arm underfits (its training error is "
           "about its test error), and dropout only slows the fit. Without it both WRNs "
           "lead in the mean, each in 2 seeds of 3: ResNet-110's seeds spread from 10.65% "
           "to 16.30%, more than the gap.",
}


def base(dataset, scale):
    return he_cifar(dataset, epochs=200)
