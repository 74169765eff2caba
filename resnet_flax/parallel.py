"""The device mesh, its shardings, and multi-process start-up.

One code path serves one device, several local devices and several processes
(``jax.distributed``): arrays are assembled from host data with
``make_array_from_callback``, which gives each process only its own shards.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None, num_processes: int,
                           process_id: int) -> None:
    """Joins a multi-process run; a no-op for a single process."""
    if num_processes <= 1:
        return
    if not coordinator_address:
        raise ValueError(f"num_processes={num_processes} needs a coordinator address "
                         "(host:port of process 0)")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id={process_id} must be in [0, {num_processes})")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def make_mesh(devices=None) -> Mesh:
    """A 1-D data-parallel mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (params, optimizer state, datasets)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The leading (batch) axis is split over the data axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def put(tree, sharding: NamedSharding):
    """Host values (the same in every process) -> global arrays with ``sharding``."""
    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, tree)


def check_divisible(batch_size: int, mesh: Mesh, what: str) -> None:
    """Batches must split evenly over the devices; say which setting to change if not."""
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(f"config.{what}={batch_size} is not divisible by the {n} devices; "
                         f"use a multiple of {n}")
