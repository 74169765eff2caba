"""Ablation experiments: one small declarative module per finding (``python -m
experiments.run --list``), run by ``experiments.run`` through ``train_and_evaluate``."""
