"""What an experiment module declares, and the runs it expands to.

An experiment module defines:

- ``TITLE``, ``FINDING`` (what the published result says) and ``SOURCE`` (the paper);
- ``base(dataset, scale)``: the config every arm starts from;
- ``ARMS``: arm name -> config overrides (dotted keys, ``model_options.norm``);
- ``SCALES``: scale name -> overrides for every arm (``quick`` fits a 2-core CPU,
  ``paper`` is the published schedule), optionally with an ``"arms"`` list: the arms
  that scale runs;
- optionally ``PLOT = "scatter"`` (test error against parameters and MACs) instead of
  the default error curves, or ``PANELS`` (panel title -> arms): the paper's figure, a
  panel per group, training error bold and test error thin against iterations; and
  ``BATCH_SWEEP`` (norm -> images its statistics span -> arm): a second figure, test
  error against those images (Wu & He's fig. 1);
- optionally ``NOTES`` (scale -> text): said under that scale's verdicts.

Runs of one arm differ only in ``config.seed``.
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib

import ml_collections

EXPERIMENTS = ("degradation", "shortcuts", "preactivation", "depth_width", "optimizer",
               "normalization")


@dataclasses.dataclass(frozen=True)
class Run:
    arm: str
    seed: int
    config: ml_collections.ConfigDict
    workdir: pathlib.Path
    # Other experiments' workdirs at this scale: a finished run there with this run's
    # config is copied instead of trained (``runner.twin``).
    peers: tuple[pathlib.Path, ...] = ()


def load(name: str):
    """The experiment module ``experiments.<name>``; ``ValueError`` for an unknown one."""
    if name not in EXPERIMENTS:
        from resnet_flax.suggest import closest

        raise ValueError(f"unknown experiment {name!r}{closest(name, EXPERIMENTS)}; "
                         f"experiments: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"experiments.{name}")


def apply(config: ml_collections.ConfigDict, overrides: dict) -> None:
    """Sets each dotted key of ``overrides`` on ``config`` (an unknown key fails)."""
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for name in parents:
            node = node[name]
        if leaf not in node:
            raise KeyError(f"no config field {key!r}")
        node[leaf] = value


def arms(module, scale: str, only: tuple[str, ...] = ()) -> list[str]:
    """The arms ``scale`` runs, in declaration order; with ``only``, just those of them
    (``ValueError`` for a name that is not one)."""
    chosen = module.SCALES[scale].get("arms")
    names = [a for a in module.ARMS if chosen is None or a in chosen]
    for name in only:
        if name not in names:
            from resnet_flax.suggest import closest

            raise ValueError(f"--arms {name!r} is not an arm of the {scale} scale"
                             f"{closest(name, names)}; arms: {', '.join(names)}")
    return [a for a in names if not only or a in only]


def expand(module, dataset: str, scale: str, seeds: int, workdir: pathlib.Path,
           extra: dict | None = None, only: tuple[str, ...] = ()) -> list[Run]:
    """Every (arm, seed) run of ``module`` at ``scale`` (of the arms in ``only``, if
    given), each in ``workdir/arm/seed_<s>``."""
    if scale not in module.SCALES:
        raise ValueError(f"unknown scale {scale!r}; scales: {', '.join(module.SCALES)}")
    scale_overrides = {k: v for k, v in module.SCALES[scale].items() if k != "arms"}
    runs = []
    for arm in arms(module, scale, only):
        for seed in range(seeds):
            config = module.base(dataset, scale)
            apply(config, {**scale_overrides, **module.ARMS[arm], **(extra or {}),
                           "seed": seed})
            runs.append(Run(arm, seed, config, workdir / arm / f"seed_{seed}"))
    return runs
