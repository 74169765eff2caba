"""The seed tutorial's Adam recipe against SGD with a step schedule and with cosine."""

from experiments.claims import Ahead
from experiments.common import gpu_scale, he_cifar

TITLE = "Optimizer: Adam + plateau/early stopping against SGD (step, cosine)"
SOURCE = ("The Keras seed tutorial (Adam, batch 64, EarlyStopping, ReduceLROnPlateau) "
          "against He et al.'s SGD and Loshchilov & Hutter's cosine (SGDR)")
FINDING = ("SGD with momentum and a decaying schedule generalises better than Adam on "
           "image classification (Wilson et al. 2017); cosine matches or beats steps.")
ARMS = {
    "adam_plateau": {"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0,
                     "schedule": "constant", "reduce_lr_on_plateau.enabled": True,
                     "reduce_lr_on_plateau.patience": 2, "reduce_lr_on_plateau.factor": 0.5,
                     "early_stopping.enabled": True, "early_stopping.patience": 5},
    "sgd_step": {},
    "sgd_cosine": {"schedule": "warmup_cosine"},
}
SCALES = {
    "quick": {"num_epochs": 6, "lr_boundaries_epochs": (4, 5), "train_subset": 5000},
    # The whole training set for 20 epochs: where the optimizers' generalisation parts.
    "gpu": gpu_scale(20),
    "paper": {"num_epochs": 30, "lr_boundaries_epochs": (15, 22), "train_subset": 0},
}
CLAIMS = [
    Ahead("SGD with steps generalises better than Adam", "sgd_step", "adam_plateau"),
    Ahead("cosine beats steps", "sgd_cosine", "sgd_step"),
]


def base(dataset, scale):
    c = he_cifar(dataset, epochs=30)
    c.model = "fashion_mnist_resnet"  # The seed tutorial's net.
    return c
