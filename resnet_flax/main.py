"""Command line: train and evaluate a config in a workdir.

    python -m resnet_flax.main --config configs/fashion_mnist.py --workdir runs/fm \
        --config.lr=0.05

Running the same command again resumes from the workdir's latest checkpoint.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from resnet_flax import host_devices

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A config file from configs/.", lock_config=True)
_HOST_DEVICES = flags.DEFINE_integer(
    "host_devices", None,
    "Virtual XLA devices to split a CPU into (default: one per core, at most 8). "
    "Ignored when XLA_FLAGS already sets --xla_force_host_platform_device_count.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
    host_devices.split_cpu(_HOST_DEVICES.value)
    from resnet_flax import train  # JAX's backends must start after split_cpu.

    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
