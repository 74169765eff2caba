"""Several processes: joining a run by hand or under a cluster launcher JAX knows, and
under SLURM, which GPUs each task drives.

``jax.distributed.initialize()`` under SLURM gives each task ``local_device_ids=
[SLURM_LOCALID]``: one GPU per task. A job written as one task per node with all its
GPUs (``--ntasks-per-node=1 --gpus-per-node=8``) would then train on one GPU of each
node. ``slurm_local_devices`` reads the layout from SLURM's variables instead.
"""

from __future__ import annotations

import os
import sys


def slurm_local_devices(env=None) -> list[int] | None:
    """The local GPU ids this SLURM task drives, from the GPUs it sees and the tasks on
    its node: all of them for one task per node, its share for several (its one GPU
    when SLURM binds one to each task). None outside SLURM or without GPUs (JAX's own
    choice)."""
    env = os.environ if env is None else env
    visible = _visible_gpus(env)
    if "SLURM_JOB_ID" not in env or not visible:
        return None
    tasks = _tasks_on_node(env)
    if tasks and visible % tasks == 0:
        per_task, local = visible // tasks, int(env.get("SLURM_LOCALID", 0))
        return list(range(local * per_task, (local + 1) * per_task))
    return [0] if visible == 1 else None


def _visible_gpus(env) -> int | None:
    """GPUs this task sees: ``CUDA_VISIBLE_DEVICES`` (SLURM sets it when it binds GPUs),
    else the node's (``SLURM_GPUS_ON_NODE``)."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return len([d for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()])
    count = env.get("SLURM_GPUS_ON_NODE", "")
    return int(count) if count.isdigit() else None


def _tasks_on_node(env) -> int | None:
    """``SLURM_NTASKS_PER_NODE``, else the first count of ``SLURM_TASKS_PER_NODE``
    ("4(x2),2": 4)."""
    count = env.get("SLURM_NTASKS_PER_NODE", "")
    if count.isdigit():
        return int(count)
    first = env.get("SLURM_TASKS_PER_NODE", "").split(",")[0].split("(")[0]
    return int(first) if first.isdigit() else None


def describe_devices() -> None:
    """One line per process at start: which devices it drives."""
    import jax

    devices = ", ".join(str(d.id) for d in jax.local_devices())
    print(f"process {jax.process_index()} of {jax.process_count()}: "
          f"{jax.local_device_count()} {jax.default_backend()} devices ({devices}) of "
          f"{jax.device_count()}", file=sys.stderr, flush=True)


# What JAX's SLURM detection reads (jax._src.clusters.slurm_cluster): set in each task of
# an ``srun`` step, not in a batch script.
_SLURM_STEP = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
               "SLURM_LOCALID")


def cluster_from_environment(env=None) -> str | None:
    """The multi-process launcher this process runs under, as JAX's
    ``jax.distributed.initialize()`` detects it with no arguments, or None: SLURM
    (``srun`` with more than one task), Open MPI (``mpirun -np N``, N > 1) or a
    multi-host Cloud TPU slice.

    Under SLURM only a step ``srun`` starts counts: a batch script of a job of N tasks
    runs once, with ``SLURM_NTASKS=N`` but none of the step's variables, and JAX would
    find no coordinator there."""
    env = os.environ if env is None else env
    if all(k in env for k in _SLURM_STEP) and int(env["SLURM_NTASKS"]) > 1:
        return f"SLURM ({env['SLURM_NTASKS']} tasks)"
    if int(env.get("OMPI_COMM_WORLD_SIZE", 1)) > 1:
        return f"Open MPI ({env['OMPI_COMM_WORLD_SIZE']} processes)"
    if len(env.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1:
        return f"Cloud TPU ({len(env['TPU_WORKER_HOSTNAMES'].split(','))} hosts)"
    return None


def join(coordinator_address: str | None, num_processes: int, process_id: int,
         env=None, peer_timeout: int = 20) -> str | None:
    """Joins a multi-process run: the one the arguments describe, else the one a cluster
    launcher set up (``cluster_from_environment``: JAX reads the coordinator, process
    count and index from it). A no-op for a single process. Returns how it joined."""
    if num_processes <= 1:
        cluster = None if coordinator_address else cluster_from_environment(env)
        if cluster:
            import jax

            # Under SLURM, the GPUs this task drives (JAX's default: one per task).
            jax.distributed.initialize(local_device_ids=slurm_local_devices(env),
                                       heartbeat_timeout_seconds=peer_timeout)
            describe_devices()
        return cluster
    if not coordinator_address:
        raise ValueError(f"num_processes={num_processes} needs a coordinator address "
                         "(host:port of process 0)")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id={process_id} must be in [0, {num_processes})")
    import jax

    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               heartbeat_timeout_seconds=peer_timeout)
    describe_devices()
    return f"{num_processes} processes via {coordinator_address}"
