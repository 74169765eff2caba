"""XLA:CPU set-up before JAX starts: virtual devices and which library runs convolutions.

``split_cpu``: several XLA devices on one CPU, each running its shard of the batch
concurrently: what uses the cores when each convolution runs on one thread. Must run
before JAX initialises its backends; a GPU/TPU run is unaffected.

``eigen_convs``: XLA:CPU (jaxlib 0.10) hands convolutions to YNNPACK, which runs each on
a single thread; Eigen's use the whole thread pool, and the train step is faster with
them (BENCHMARKS.md, "Eigen convolutions, one device, conv inputs materialised"). XLA
aborts on a flag it does not know, so the flag is only added for the jaxlib versions it
was measured on.
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count"
_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
_EIGEN_CONVS = f"{_YNN_FLAG}=-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"
_EIGEN_CONV_JAXLIBS = ("0.10.",)  # Versions whose XLA has the flag and was measured.


def _append_flag(flag: str) -> None:
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def default_count() -> int:
    """One device when Eigen runs the convolutions (they use every core already, and
    devices sharing its thread pool are slower: BENCHMARKS.md), else one per core, at
    most 8 (YNNPACK's single-threaded ones need a device per core)."""
    if _EIGEN_CONVS in os.environ.get("XLA_FLAGS", ""):
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def split_cpu(count: int | None = None) -> None:
    """Adds the device-count flag to XLA_FLAGS unless the user already set one.

    Call after ``eigen_convs``: the default count depends on its flag.
    """
    if _FLAG in os.environ.get("XLA_FLAGS", ""):
        return
    count = default_count() if count is None else count
    if count < 1:
        raise ValueError(f"host device count {count} must be >= 1")
    _append_flag(f"{_FLAG}={count}")


def eigen_convs(jaxlib_version: str | None = None) -> bool:
    """Routes XLA:CPU convolutions to Eigen (multi-threaded) instead of YNNPACK.

    Adds the flag to XLA_FLAGS unless the user already set the YNN fusion flag or
    this jaxlib was not measured. Returns whether the flag is now in effect.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _YNN_FLAG in flags:
        return _EIGEN_CONVS in flags
    if jaxlib_version is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            jaxlib_version = version("jaxlib")
        except PackageNotFoundError:
            return False
    if not jaxlib_version.startswith(_EIGEN_CONV_JAXLIBS):
        return False
    _append_flag(_EIGEN_CONVS)
    return True
