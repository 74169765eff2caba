"""resnet_flax: residual networks in JAX/Flax, trained end to end on TFDS data."""

__version__ = "0.1.0"
