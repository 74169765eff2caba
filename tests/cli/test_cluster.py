"""Under SLURM, each task drives the GPUs its job's layout gives it."""

import pytest

from resnet_flax.cli import cluster

SLURM = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "16", "SLURM_PROCID": "3"}


@pytest.mark.parametrize("layout,local_id,expected", [
    # One task per node with all its GPUs: every GPU (JAX's default would take one).
    ({"SLURM_NTASKS_PER_NODE": "1", "SLURM_GPUS_ON_NODE": "8"}, 0, list(range(8))),
    ({"SLURM_TASKS_PER_NODE": "1(x2)", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 0, [0, 1, 2, 3]),
    # One task per GPU, each seeing the node's GPUs: its own.
    ({"SLURM_NTASKS_PER_NODE": "8", "SLURM_GPUS_ON_NODE": "8"}, 5, [5]),
    # One task per GPU with GPUs bound to tasks (--gpus-per-task=1): the one it sees.
    ({"SLURM_NTASKS_PER_NODE": "8", "CUDA_VISIBLE_DEVICES": "5"}, 5, [0]),
    # Two tasks per node of 8 GPUs: four each.
    ({"SLURM_TASKS_PER_NODE": "2(x4)", "SLURM_GPUS_ON_NODE": "8"}, 1, [4, 5, 6, 7]),
    # No GPUs (a CPU job), or a layout that does not divide: JAX's own choice.
    ({"SLURM_NTASKS_PER_NODE": "2", "CUDA_VISIBLE_DEVICES": ""}, 1, None),
    ({"SLURM_NTASKS_PER_NODE": "3", "SLURM_GPUS_ON_NODE": "8"}, 1, None),
])
def test_each_slurm_task_drives_the_gpus_of_its_layout(layout, local_id, expected):
    env = {**SLURM, **layout, "SLURM_LOCALID": str(local_id)}
    assert cluster.slurm_local_devices(env) == expected


def test_outside_slurm_jax_chooses():
    assert cluster.slurm_local_devices({"CUDA_VISIBLE_DEVICES": "0,1"}) is None
