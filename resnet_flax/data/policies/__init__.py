"""Augmentation policies on the host, as their sources define them."""
