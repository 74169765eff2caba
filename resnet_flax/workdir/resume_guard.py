"""A workdir's ``config.json`` is the contract its checkpoints and metrics were made under.

Resuming with a config that would train differently (another model, dataset, batch
size, optimizer, schedule, seed, ...) mixes two runs in one history: ``check`` refuses
it in one line that lists the differing fields, before anything is written, unless
``config.allow_config_change``. Fields that do not change what is trained up to the
saved step (``num_epochs`` to extend a run, bookkeeping, where the data lives) may
change; ``record`` writes the new ``config.json`` and appends each change to
``config_changes.jsonl`` with the step it took effect at.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import NamedTuple

from resnet_flax.config import ConfigError, default_config
from resnet_flax.workdir import metrics

# Fields whose change leaves the training up to the saved step as it was.
MAY_CHANGE = frozenset({
    "num_epochs", "eval_batch_size", "data_dir", "allow_download", "folder_changed",
    "progress_bar",
    "checkpoint_every_steps", "keep_checkpoints", "best_metric", "allow_config_change",
    "parallelism",  # jit and pmap train alike (tests/test_parallel.py).
    "input", "input_workers",  # So do the two inputs (tests/test_stream.py).
    "steps_per_dispatch"})  # Bit for bit (tests/train/test_dispatch.py).
CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.jsonl"
DEVICES_FILE = "devices.json"  # How many devices the run last trained on.


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def as_dict(config) -> dict:
    """The config as ``config.json`` stores it (tuples as lists), flattened to dotted keys."""
    return _flat(json.loads(config.to_json_best_effort()))


def differences(saved: dict, new: dict) -> dict[str, tuple]:
    """{field: (saved, new)} over both configs; a field the saved run predates counts
    as its default."""
    defaults = as_dict(default_config())
    out = {}
    for key in sorted(set(saved) | set(new)):
        before = saved.get(key, defaults.get(key))
        after = new.get(key, defaults.get(key))
        if before != after:
            out[key] = (before, after)
    return out


def saved(workdir: pathlib.Path) -> dict | None:
    """The workdir's ``config.json``, flattened (None: there is none)."""
    path = pathlib.Path(workdir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return _flat(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is unreadable ({e}); it records the run in this workdir: "
                          "restore it or use a new --workdir") from None


def load(workdir: pathlib.Path):
    """The workdir's ``config.json`` as a config (fields it predates keep their defaults);
    ``ConfigError`` if there is none."""
    flat = saved(workdir)
    if flat is None:
        raise ConfigError(f"{pathlib.Path(workdir) / CONFIG_FILE} does not exist: "
                          "is this the --workdir of a run?")
    config = default_config()
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = config
        for name in parents:
            node = node.get(name)
        if node is not None and parents == ["optimizer_options"]:  # Keys of the run's own.
            with node.unlocked():
                node[leaf] = value
            continue
        if node is None or leaf not in node:  # A field this version no longer has.
            continue
        node[leaf] = tuple(value) if isinstance(node[leaf], tuple) else value
    return config


class Comparison(NamedTuple):
    """How a config differs from the run a workdir holds: {field: (saved, new)}."""

    changed: dict[str, tuple]  # Every field that differs.
    refused: dict[str, tuple]  # Those that would change the training (not MAY_CHANGE).


def compare(config, workdir: pathlib.Path) -> Comparison | None:
    """``config`` against the workdir's saved one (None: the workdir holds no run). A run
    may resume under ``config`` when ``refused`` is empty (or ``allow_config_change``)."""
    before = saved(workdir)
    if before is None:
        return None
    changed = differences(before, as_dict(config))
    return Comparison(changed, {k: v for k, v in changed.items() if k not in MAY_CHANGE})


def check(config, workdir: pathlib.Path) -> dict[str, tuple]:
    """The allowed changes against the workdir's saved config; raises ``ConfigError`` on
    one that would change the training (unless ``config.allow_config_change``)."""
    found = compare(config, workdir)
    if found is None:
        return {}
    if found.refused and not config.allow_config_change:
        listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in found.refused.items())
        raise ConfigError(
            f"{workdir} holds a run with another config ({listed}); resuming would mix "
            "two runs: use a new --workdir, or --config.allow_config_change=True to resume "
            "with the change")
    return found.changed


def device_change(workdir: pathlib.Path, devices: int) -> dict[str, tuple]:
    """``{"devices": (before, now)}`` when the run last trained on another device count
    (empty otherwise: the same count, or a new run)."""
    path = pathlib.Path(workdir) / DEVICES_FILE
    try:
        before = json.loads(path.read_text())["devices"]
    except (OSError, ValueError, KeyError, TypeError):  # None yet (or torn: write anew).
        return {}
    return {"devices": (before, devices)} if before != devices else {}


def ghost_statistics_warning(config, workdir, change: dict[str, tuple]) -> str | None:
    """The ``warning:`` line for a resume on another device count where the math depends
    on it by design: per-device BatchNorm statistics (``sync_batch_stats=False``)."""
    if not change or config.sync_batch_stats:
        return None
    before, now = change["devices"]
    return (f"warning: {workdir} trained on {before} devices with per-device BatchNorm "
            f"statistics (config.sync_batch_stats=False) and resumes on {now}: each "
            f"device's statistics now span {config.batch_size // now} examples, not "
            f"{config.batch_size // before}, so the run goes on as a different one")


def record(config, workdir: pathlib.Path, changed: dict[str, tuple], step: int,
           devices: int | None = None) -> None:
    """Writes ``config.json`` (and the device count) and, for a resumed run, what
    changed at ``step``."""
    workdir = pathlib.Path(workdir)
    if devices is not None:
        _write_whole(workdir / DEVICES_FILE, json.dumps({"devices": devices}) + "\n")
    if changed:
        entry = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "changes": {k: {"from": a, "to": b} for k, (a, b) in changed.items()}}
        changes = workdir / CHANGES_FILE
        if changes.exists():  # An appended row must not join a torn one's remains.
            metrics.set_aside_torn(changes, "")
        with open(changes, "a") as f:
            f.write(json.dumps(entry) + "\n")
    _write_whole(workdir / CONFIG_FILE, config.to_json_best_effort(indent=2) + "\n")


def _write_whole(path: pathlib.Path, text: str) -> None:
    """``text`` into ``path`` whole or not at all (a torn config.json would stop every
    resume); nothing at all when it holds ``text`` already, so a resume with the same
    command writes no file before training (on a full disk, too)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    metrics.write_whole(path, text)
