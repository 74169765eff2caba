"""The one set-up of a process, which every command calls before anything else.

In this order, because each step must precede what follows it: third-party console
noise off (``quiet``); XLA:CPU's flags, which JAX reads when its backends start
(``host_devices``: Eigen convolutions and the virtual device count); the persistent
compilation cache (``compile_cache``); and, for a multi-process run, the
``jax.distributed`` start, which must come before any JAX computation. With
``RESNET_FLAX_VERBOSE=1`` it prints what it set up on one line.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from resnet_flax import quiet
from resnet_flax.cli import cluster, compile_cache, host_devices

CPU_CONVS = ("eigen", "xla-default")


@dataclasses.dataclass(frozen=True)
class Processes:
    """A multi-process run as the command line describes it (one process: the defaults;
    under a cluster launcher JAX knows, the launcher's environment describes it)."""

    coordinator_address: str | None = None
    num_processes: int = 1
    process_id: int = 0
    peer_timeout: int = 20  # Seconds without a heartbeat before a process counts as lost.


def start(host_device_count: int | None = None, cpu_convs: str = "eigen",
          cache: bool = True, processes: Processes | None = None,
          silence: bool = True) -> str | None:
    """Sets up this process (see the module docstring); returns how it joined a
    multi-process run, or None. ``processes=None``: a single-process command;
    ``silence=False`` keeps third-party output (``main --verbosity=1``)."""
    if silence:
        quiet.silence_third_party()
    if not jax_started():  # In-process callers (tests, notebooks) keep the JAX they have.
        xla_cpu_flags(host_device_count, cpu_convs)
    cache_dir = compile_cache.enable() if cache else None  # RESNET_FLAX_COMPILE_CACHE=0: off.
    joined = None
    if processes is not None:
        joined = cluster.join(processes.coordinator_address, processes.num_processes,
                              processes.process_id, peer_timeout=processes.peer_timeout)
    if quiet.verbose():
        print(f"set-up: XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} compile cache="
              f"{cache_dir} processes={joined or 'one'}",
              file=sys.stderr, flush=True)
    return joined


def xla_cpu_flags(host_device_count: int | None = None, cpu_convs: str = "eigen") -> None:
    """XLA:CPU's convolution library and virtual device count, unless the user's
    ``XLA_FLAGS`` already chose them. No effect once JAX's backends have started."""
    if cpu_convs not in CPU_CONVS:
        raise ValueError(f"cpu_convs={cpu_convs!r} is not one of {CPU_CONVS}")
    if cpu_convs == "eigen":
        host_devices.eigen_convs()
    host_devices.split_cpu(host_device_count)


def jax_started() -> bool:
    """Whether JAX's backends have started: XLA flags set now would not reach them."""
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge  # No public API tells; jax 0.4 to 0.11 have this one.

    return getattr(xla_bridge, "backends_are_initialized", lambda: True)()
