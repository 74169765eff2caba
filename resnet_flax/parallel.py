"""The device mesh, its shardings, multi-process start-up, and the two ways of
compiling the one pure train/eval step over the devices (``config.parallelism``).

One code path serves one device, several local devices and several processes
(``jax.distributed``): arrays are assembled from host data with
``make_array_from_callback``, which gives each process only its own shards.

- ``JitMode`` (the default): ``jax.jit`` with shardings. State and data replicated,
  each batch split over the ``data`` axis; XLA inserts the collectives.
- ``PmapMode``: ``jax.pmap`` of the same step with the axis named ``data``. Every
  input carries a leading device axis; the step takes its device's rows of the batch
  (``this_device_rows``) and reduces gradients, BatchNorm statistics and metric sums
  over the axis itself. Both give the same losses and parameters (tests/test_parallel.py).

Either way ``canonical`` gives the state in jit's layout (one copy, no device axis):
what checkpoints hold, so a run can change mode when it resumes.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from resnet_flax.config import PARALLELISMS, ConfigError

DATA_AXIS = "data"


def cluster_from_environment(env=None) -> str | None:
    """The multi-process launcher this process runs under, as JAX's
    ``jax.distributed.initialize()`` detects it with no arguments, or None: SLURM
    (``srun`` with more than one task), Open MPI (``mpirun -np N``, N > 1) or a
    multi-host Cloud TPU slice."""
    env = os.environ if env is None else env
    if "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", 1))) > 1:
        return f"SLURM ({env.get('SLURM_NTASKS', env.get('SLURM_NPROCS'))} tasks)"
    if int(env.get("OMPI_COMM_WORLD_SIZE", 1)) > 1:
        return f"Open MPI ({env['OMPI_COMM_WORLD_SIZE']} processes)"
    if len(env.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1:
        return f"Cloud TPU ({len(env['TPU_WORKER_HOSTNAMES'].split(','))} hosts)"
    return None


def initialize_distributed(coordinator_address: str | None, num_processes: int,
                           process_id: int, env=None) -> str | None:
    """Joins a multi-process run: the one the arguments describe, else the one a cluster
    launcher set up (``cluster_from_environment``: JAX reads the coordinator, process
    count and index from it). A no-op for a single process. Returns how it joined."""
    if num_processes <= 1:
        cluster = None if coordinator_address else cluster_from_environment(env)
        if cluster:
            jax.distributed.initialize()
        return cluster
    if not coordinator_address:
        raise ValueError(f"num_processes={num_processes} needs a coordinator address "
                         "(host:port of process 0)")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id={process_id} must be in [0, {num_processes})")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return f"{num_processes} processes via {coordinator_address}"


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
    """Batches must split evenly over the devices; say which setting to change if not
    (a ``ConfigError``: ``main`` prints it as one line)."""
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(f"config.{what}={batch_size} is not divisible by the {n} devices; "
                         f"use a multiple of {n}")


def this_device_rows(tree, axis_name: str | None):
    """Under pmap (``axis_name`` bound), this device's equal share of every array's
    leading (batch) axis; the arrays themselves otherwise."""
    if axis_name is None:
        return tree

    def one(a):
        rows = a.shape[0] // jax.lax.axis_size(axis_name)
        return jax.lax.dynamic_slice_in_dim(a, jax.lax.axis_index(axis_name) * rows, rows, 0)

    return jax.tree.map(one, tree)


def all_rows(tree, axis_name: str | None):
    """Under pmap, the whole batch from every device's rows (``this_device_rows``'
    inverse); the arrays themselves otherwise."""
    if axis_name is None:
        return tree
    return jax.tree.map(lambda a: jax.lax.all_gather(a, axis_name, tiled=True), tree)


def process_rows(mesh: Mesh, global_batch: int) -> slice:
    """The rows of a global batch that this process's devices hold (a streamed batch is
    read only here): contiguous, ``global_batch / process_count`` of them."""
    index = batch_sharded(mesh).addressable_devices_indices_map((global_batch,))
    starts = [i[0].start or 0 for i in index.values()]
    stops = [global_batch if i[0].stop is None else i[0].stop for i in index.values()]
    rows = slice(min(starts), max(stops))
    if rows.stop - rows.start != global_batch // jax.process_count():
        raise ValueError(f"process {jax.process_index()}'s devices hold rows {rows} of a "
                         f"batch of {global_batch}: not one contiguous share")
    return rows


def mean_over(tree, axis_name: str | None):
    """The mean over the pmap axis (gradients, BatchNorm statistics); a no-op under jit."""
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def sum_over(tree, axis_name: str | None):
    """The sum over the pmap axis (metric sums); a no-op under jit."""
    return tree if axis_name is None else jax.lax.psum(tree, axis_name)


class JitMode:
    """``jax.jit`` over the mesh: one program, XLA partitions it."""

    axis_name = None

    def __init__(self, mesh: Mesh):
        self.mesh = mesh
        self._repl, self._batch = replicated(mesh), batch_sharded(mesh)

    def model_attributes(self, sync_batch_stats: bool) -> dict:
        """Per-device BatchNorm statistics: one ghost group per device's shard."""
        return {} if sync_batch_stats else {"bn_ghost_groups": self.mesh.devices.size}

    def put_state(self, tree):
        return tree if _placed(tree, self._repl) else put(jax.device_get(tree), self._repl)

    def put_replicated(self, tree):
        return put(tree, self._repl)

    def put_batch(self, tree):
        return put(tree, self._batch)

    def put_rows(self, tree):
        """This process's rows of a batch (``process_rows``) -> the global batch."""
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self._batch, np.asarray(x)), tree)

    def canonical(self, tree):
        return tree

    def train_step(self, fn, pooled: bool = True):
        """``fn(state, images, labels, indices, key)`` over whole splits (``pooled``) or
        ``fn(state, images, labels, key)`` over a batch; the state donated."""
        repl, batch = self._repl, self._batch
        data = (repl, repl, batch) if pooled else (batch, batch)
        return jax.jit(fn, in_shardings=(repl, *data, repl), out_shardings=(repl, repl),
                       donate_argnums=0)

    def eval_step(self, fn, pooled: bool = True):
        """``fn(state, images, labels, indices, mask)`` (``pooled``) or
        ``fn(state, images, labels, mask)``."""
        repl, batch = self._repl, self._batch
        data = (repl, repl, batch, batch) if pooled else (batch, batch, batch)
        return jax.jit(fn, in_shardings=(repl, *data), out_shardings=repl)


class PmapMode:
    """``jax.pmap`` over the mesh's devices with the axis named ``DATA_AXIS``: every input
    replicated with a leading device axis (the whole batch too: the step augments it
    all, as jit does, and keeps its rows), every output identical on each device."""

    axis_name = DATA_AXIS

    def __init__(self, mesh: Mesh):
        self.mesh = mesh
        self._stacked = NamedSharding(mesh, PartitionSpec(DATA_AXIS))

    def model_attributes(self, sync_batch_stats: bool) -> dict:
        """BatchNorm and dropout span the axis; ghost BatchNorm is one group per device
        (the step then averages the running statistics over devices)."""
        ghost = {} if sync_batch_stats else {"bn_ghost_groups": 1}
        return {"axis_name": DATA_AXIS, **ghost}

    def put_replicated(self, tree):
        n = self.mesh.devices.size
        return put(jax.tree.map(lambda x: np.broadcast_to(x, (n, *np.shape(x))),
                                jax.device_get(tree)), self._stacked)

    put_state = put_batch = put_replicated

    def put_rows(self, tree):
        """This process's rows of a batch -> each device its share (a leading device axis;
        the train step gathers the whole batch, ``all_rows``)."""
        local = self.mesh.local_mesh.devices.size

        def one(x):
            x = np.asarray(x)
            return jax.make_array_from_process_local_data(
                self._stacked, x.reshape(local, x.shape[0] // local, *x.shape[1:]))

        return jax.tree.map(one, tree)

    def canonical(self, tree):
        """Device 0's copy, without the device axis."""
        return jax.tree.map(lambda x: x.addressable_shards[0].data[0], tree)

    def train_step(self, fn, pooled: bool = True):
        del pooled  # Every input has a device axis either way.
        return jax.pmap(fn, axis_name=DATA_AXIS, donate_argnums=0)

    def eval_step(self, fn, pooled: bool = True):
        del pooled
        return jax.pmap(fn, axis_name=DATA_AXIS)


def mode(parallelism: str, mesh: Mesh) -> JitMode | PmapMode:
    """The compilation mode ``config.parallelism`` names, over ``mesh``."""
    if parallelism not in PARALLELISMS:
        raise ValueError(f"parallelism={parallelism!r} is not one of {PARALLELISMS}")
    return (JitMode if parallelism == "jit" else PmapMode)(mesh)


def _placed(tree, sharding: NamedSharding) -> bool:
    """Whether every leaf is already a global array with ``sharding``."""
    return all(isinstance(x, jax.Array) and x.sharding == sharding
               for x in jax.tree.leaves(tree))
