"""XLA:CPU set-up before JAX starts: virtual devices and which library runs convolutions.

``split_cpu``: several XLA devices on one CPU, each running its shard of the
batch concurrently. With YNNPACK's single-threaded convolutions that is what
uses the cores (1.6-1.9x on a 2-core machine); with Eigen's it no longer pays.
Must run before JAX initialises its backends; a GPU/TPU run is unaffected (its
devices are the accelerators).

``eigen_convs``: XLA:CPU (jaxlib 0.10) hands convolutions to YNNPACK, which runs
each one on a single thread; Eigen's convolutions use the whole thread pool.
Measured on a 2-core machine (BENCHMARKS.md): 3x3 conv forward 65 -> 137 GFLOP/s,
weight gradient 62 -> 180 GFLOP/s, CIFAR ResNet-18 train step 20 -> 30 img/s on one
device. XLA aborts on a flag it does not know, so the flag is only added for the
jaxlib versions it was measured on.
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
    """One device when Eigen runs the convolutions, else one per core, at most 8.

    Eigen's convolutions already use every core, and devices sharing its thread
    pool measured slower than one (ResNet-20: 244 vs 165 img/s, BENCHMARKS.md);
    YNNPACK's single-threaded ones need a device per core to use the cores.
    """
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
