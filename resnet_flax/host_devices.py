"""Splitting the CPU into several XLA devices, so a data-parallel step uses every core.

XLA's CPU backend runs one step's ops on a shared thread pool but leaves cores
idle between small ops; as several virtual devices, each runs its shard of the
batch concurrently. Measured on a 2-core machine: 1.6-1.9x (see BENCHMARKS.md).
Must run before JAX initialises its backends; a GPU/TPU run is unaffected (its
devices are the accelerators).
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count"


def default_count() -> int:
    """One virtual device per core, at most 8 (more only shrinks each shard)."""
    return max(1, min(os.cpu_count() or 1, 8))


def split_cpu(count: int | None = None) -> None:
    """Adds the device-count flag to XLA_FLAGS unless the user already set one."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG in flags:
        return
    count = default_count() if count is None else count
    if count < 1:
        raise ValueError(f"host device count {count} must be >= 1")
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={count}".strip()
