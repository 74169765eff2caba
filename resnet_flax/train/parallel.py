"""The device mesh, its shardings, and the two ways of compiling the one train step and
the one eval step over the devices (``config.parallelism``).

One code path serves one device, several local devices and several processes
(``jax.distributed``, started by ``cli.setup``): arrays are assembled from host data
with ``make_array_from_callback``, which gives each process only its own shards, and a
batch from each process's rows (``put_rows``).

- ``JitMode`` (the default): ``jax.jit`` over the mesh. State and splits replicated,
  each batch split over the ``data`` axis; XLA inserts the collectives.
- ``PmapMode``: ``jax.pmap`` of the same step with the axis named ``data``. Every
  input carries a leading device axis, a batch each device's rows; the step gathers the
  whole batch to augment it as jit does (``all_rows``), keeps its rows
  (``this_device_rows``) and reduces gradients, BatchNorm statistics and metric sums
  over the axis itself. Both give the same losses and parameters
  (tests/train/test_parallel.py).

Either way ``canonical`` gives the state in jit's layout (one copy, no device axis):
what checkpoints hold, so a run can change mode when it resumes.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from resnet_flax.config import ConfigError
from resnet_flax.models import norms

DATA_AXIS = "data"
PARALLELISMS = ("jit", "pmap")  # config.parallelism


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


class _Mode:
    """What both modes share: the mesh, and which rows of a batch this process reads."""

    def __init__(self, mesh: Mesh):
        self.mesh = mesh

    def process_rows(self, global_batch: int) -> slice:
        return process_rows(self.mesh, global_batch)


class JitMode(_Mode):
    """``jax.jit`` over the mesh: one program, XLA partitions it."""

    axis_name = None

    def __init__(self, mesh: Mesh):
        super().__init__(mesh)
        self._repl, self._batch = replicated(mesh), batch_sharded(mesh)

    def step_model(self, model, sync_batch_stats: bool):
        """``model`` as this mode's step runs it: without ``sync_batch_stats``, BatchNorm's
        statistics per device's shard (one ghost group each)."""
        if sync_batch_stats:
            return model
        return model.clone(norm=norms.spanning(model.norm, ghost_groups=self.mesh.devices.size))

    def put_state(self, tree):
        return tree if _placed(tree, self._repl) else put(jax.device_get(tree), self._repl)

    def put_replicated(self, tree):
        return put(tree, self._repl)

    def put_rows(self, tree):
        """This process's rows of a batch (``process_rows``) -> the global batch."""
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self._batch, np.asarray(x)), tree)

    def canonical(self, tree):
        return tree

    def train_step(self, fn):
        """``fn(state, ...)`` compiled with the state donated; the arguments keep the
        shardings they were put with, the outputs are replicated."""
        return jax.jit(fn, out_shardings=self._repl, donate_argnums=0)

    def eval_step(self, fn):
        """``fn(state, ...)`` compiled; the outputs are replicated."""
        return jax.jit(fn, out_shardings=self._repl)


class PmapMode(_Mode):
    """``jax.pmap`` over the mesh's devices with the axis named ``DATA_AXIS``: every input
    has a leading device axis (the state replicated, a batch split into each device's
    rows), every output is identical on each device."""

    axis_name = DATA_AXIS

    def __init__(self, mesh: Mesh):
        super().__init__(mesh)
        self._stacked = NamedSharding(mesh, PartitionSpec(DATA_AXIS))

    def step_model(self, model, sync_batch_stats: bool):
        """``model`` with BatchNorm and dropout spanning the axis; without
        ``sync_batch_stats`` ghost BatchNorm of one group per device (the step then
        averages the running statistics over devices)."""
        norm = (norms.spanning(model.norm, axis_name=DATA_AXIS) if sync_batch_stats
                else norms.spanning(model.norm, ghost_groups=1))
        return model.clone(norm=norm, dropout=functools.partial(model.dropout,
                                                                axis_name=DATA_AXIS))

    def put_replicated(self, tree):
        n = self.mesh.devices.size
        return put(jax.tree.map(lambda x: np.broadcast_to(x, (n, *np.shape(x))),
                                jax.device_get(tree)), self._stacked)

    put_state = put_replicated

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

    def train_step(self, fn):
        return jax.pmap(fn, axis_name=DATA_AXIS, donate_argnums=0)

    def eval_step(self, fn):
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
