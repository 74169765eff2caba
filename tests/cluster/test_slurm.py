"""Under a real SLURM (the local one-node cluster of local_slurm.sh, fake GPUs): ``srun``
tasks train one model as JAX's own SLURM detection joins them, each task drives the
GPUs of its job's layout, and a pre-empted, requeued job resumes exactly."""

import json
import re
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import tiny_overrides
from runs import CONFIG, assert_same_training, final_params, read_metrics, run_processes
from slurm_jobs import slurm_cluster  # noqa: F401  (the `slurm` fixture)

ONE_DEVICE = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


@pytest.mark.slow
def test_srun_tasks_train_bit_for_bit_as_one_process_with_two_devices(
        slurm, tiny_data_dir, tmp_path):
    """``srun -n 2`` with no flags: JAX reads the coordinator, process count and index
    from SLURM; each task reads its rows of every batch (as in e2e/test_distributed)."""
    overrides = tiny_overrides(tiny_data_dir, num_epochs=1, input="stream", input_workers=1,
                               optimizer="sgd", lr=1e-4, eval_batch_size=12)
    run_processes(tmp_path / "single", overrides, 1, devices_each=2, optimized=True)
    proc = slurm.run("srun", "-n", "2", "--kill-on-bad-exit=1", sys.executable, "-m",
                     "resnet_flax.main", "--config", CONFIG, "--workdir", tmp_path / "multi",
                     *overrides, env={**ONE_DEVICE, "JAX_DISABLE_MOST_OPTIMIZATIONS": "0"})
    assert "multi-process run set up by SLURM (2 tasks)" in proc.stderr
    for index in (0, 1):
        assert f"process {index} of 2: 1 cpu devices" in proc.stderr
    assert_same_training(tmp_path / "single", tmp_path / "multi", atol=0.0, rtol=0.0)


# What a task decides, and the SLURM variables it decides from.
SNIPPET = """
import json, os
from resnet_flax.cli import cluster
names = ("SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE",
         "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES")
print(json.dumps({"devices": cluster.slurm_local_devices(),
                  "cluster": cluster.cluster_from_environment(),
                  **{n: os.environ.get(n) for n in names}}))
"""

# Layout -> (its options, the devices each task drives by SLURM_LOCALID, how it joins).
LAYOUTS = {
    "one task per GPU, bound": (["--ntasks-per-node=2", "--gpus-per-task=1"],
                                [[0], [0]], "SLURM (2 tasks)"),
    "one task per GPU, unbound": (["--ntasks-per-node=2", "--gres=gpu:2"],
                                  [[0], [1]], "SLURM (2 tasks)"),
    "one task per node": (["--ntasks-per-node=1", "--gpus-per-node=2"], [[0, 1]], None),
}


def decisions(output: str) -> list[dict]:
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return sorted(rows, key=lambda r: int(r["SLURM_LOCALID"]))


def batch(slurm, tmp_path, line: str, *options) -> str:
    """The output of a batch job of the script ``line``, once it has ended."""
    script, log = tmp_path / "job.sh", tmp_path / "job.log"
    script.write_text(f"#!/bin/bash\n{line}\n")
    job = slurm.sbatch(*options, "-o", log, script)
    assert slurm.wait_done(job) == "COMPLETED", log.read_text()
    return log.read_text()


@pytest.mark.parametrize("launch", ["srun", "sbatch"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_task_drives_the_gpus_of_its_layout(slurm, layout, launch,
                                                 tmp_path):
    """With fake GPUs, in the job's layout given to ``srun`` or to ``sbatch`` (whose
    script's ``srun`` inherits it)."""
    options, expected, joined = LAYOUTS[layout]
    (tmp_path / "decide.py").write_text(SNIPPET)
    command = f"{sys.executable} {tmp_path / 'decide.py'}"
    if launch == "srun":
        output = slurm.run("srun", "-N1", *options, *command.split()).stdout
    else:
        output = batch(slurm, tmp_path, f"srun {command}", "-N1", *options)
    rows = decisions(output)
    assert [r["devices"] for r in rows] == expected, rows
    assert {r["cluster"] for r in rows} == {joined}, rows
    assert {r["SLURM_GPUS_ON_NODE"] for r in rows} == {"2"}, rows


def test_a_batch_script_of_several_tasks_runs_as_one_process(slurm, tmp_path):
    """``sbatch -n 2`` running python itself, not through srun: one process with nothing
    to join (JAX would find no coordinator)."""
    (tmp_path / "join.py").write_text(SNIPPET + "print('joined', cluster.join(None, 1, 0))\n")
    output = batch(slurm, tmp_path, f"{sys.executable} {tmp_path / 'join.py'}", "-n", "2")
    (row,) = decisions(output)
    assert row["cluster"] is None and "joined None" in output, output


def flat_params(workdir) -> tuple[int, dict]:
    step, tree = final_params(workdir)
    flat = ocp.tree.to_flat_dict(tree)
    return step, {k: v for k, v in flat.items() if k != ("digest",)}


@pytest.mark.slow
def test_a_requeued_job_saves_on_sigterm_and_resumes_exactly(slurm, tiny_data_dir, tmp_path):
    """``scontrol requeue`` of a running ``sbatch --requeue`` job: SLURM sends SIGTERM to
    the batch step's processes (python, exec'd by the script), the run saves the step it
    is in and exits; the job runs again and resumes from that checkpoint, ending with an
    uninterrupted run's parameters bit for bit. Checkpoints are saved only at the end
    (every 1000 steps), so the resume starts from the signal's checkpoint."""
    overrides = tiny_overrides(tiny_data_dir, num_epochs=12, checkpoint_every_steps=1000)

    def submit(name, *options):
        workdir, script = tmp_path / name, tmp_path / f"{name}.sh"
        script.write_text(
            "#!/bin/bash\n"
            f"echo \"start ${{SLURM_RESTART_COUNT:-0}}: checkpoints "
            f"$(ls {workdir}/checkpoints 2>/dev/null | tr '\\n' ' ')\"\n"
            f"exec {sys.executable} -m resnet_flax.main --config {CONFIG} "
            f"--workdir {workdir} {' '.join(overrides)}\n")
        return slurm.sbatch(*options, "--open-mode=append", "-o", tmp_path / f"{name}.log",
                            script, env=ONE_DEVICE)

    reference, job = submit("reference", "--no-requeue"), submit("requeued", "--requeue")
    slurm.requeue_mid_run(job, tmp_path / "requeued" / "metrics.jsonl")
    assert slurm.wait_done(job) == slurm.wait_done(reference) == "COMPLETED"

    log = (tmp_path / "requeued.log").read_text()
    stopped = re.search(r"stopped by SIGTERM after step (\d+): checkpoint \1 saved", log)
    assert stopped, log
    step = int(stopped[1])
    assert f"start 1: checkpoints {step} \n" in log, log  # The requeued job resumed from it.
    final_step, params = flat_params(tmp_path / "requeued")
    assert 0 < step < final_step, log
    reference_step, reference_params = flat_params(tmp_path / "reference")
    assert final_step == reference_step
    for key in reference_params:
        np.testing.assert_array_equal(params[key], reference_params[key], err_msg=str(key))
    assert len(read_metrics(tmp_path / "requeued")) == 12


def test_installing_slurm_is_asked_for_not_done_unasked(monkeypatch):
    """Where SLURM is missing, root's suite installs it only under CI or when asked."""
    import shutil

    import slurm_jobs

    which = shutil.which
    monkeypatch.setattr(slurm_jobs.shutil, "which",
                        lambda name: None if name == "slurmctld" else which(name) or name)
    monkeypatch.setattr(slurm_jobs.os, "geteuid", lambda: 0)
    for name in ("CI", slurm_jobs.OPT_IN, slurm_jobs.OPT_OUT):
        monkeypatch.delenv(name, raising=False)
    assert slurm_jobs._cannot_start().endswith(
        "only when asked: RESNET_FLAX_LOCAL_SLURM=1 python -m pytest tests/cluster")
    monkeypatch.setenv("CI", "true")
    assert slurm_jobs._cannot_start() is None
    monkeypatch.setenv(slurm_jobs.OPT_OUT, "1")
    assert slurm_jobs._cannot_start() == f"{slurm_jobs.OPT_OUT} is set"
