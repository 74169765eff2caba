"""The committed experiment records: each ``cpu`` page regenerates from its runs' records
(training nothing), the records hold no checkpoints, and ``--scale cpu`` works beside
them by default."""

import shutil
import subprocess

import pytest
from conftest import REPO

from experiments import grid, run

RECORDED = sorted(name for name in grid.EXPERIMENTS
                  for scale in run.RECORDED_SCALES
                  if (run.RESULTS / name / scale / "results.md").exists())


def test_some_experiment_has_committed_records():
    assert RECORDED, "no experiments/results/<name>/cpu/results.md"


@pytest.mark.parametrize("name", RECORDED)
def test_a_committed_page_regenerates_from_the_committed_records(name, tmp_path,
                                                                 monkeypatch):
    committed = run.RESULTS / name / "cpu"
    shutil.copytree(committed, tmp_path / name / "cpu",
                    ignore=shutil.ignore_patterns("checkpoints", "tensorboard", "logs"))
    for page in ("results.md", "results.csv"):
        (tmp_path / name / "cpu" / page).unlink()
    monkeypatch.setattr(run, "RESULTS", tmp_path)
    assert run.main([name, "--scale", "cpu", "--report-only"]) == 0
    for page in ("results.md", "results.csv"):
        assert (tmp_path / name / "cpu" / page).read_text() == (committed / page).read_text()
    page = (committed / "results.md").read_text()
    assert f"`python -m experiments.run {name} --scale cpu --seeds 3`" in page
    figure = "scatter.png" if getattr(grid.load(name), "PLOT", "") == "scatter" else \
        "curves.png"
    assert (tmp_path / name / "cpu" / figure).stat().st_size > 10_000


def test_records_keep_metrics_and_configs_but_never_checkpoints():
    run_dir = "experiments/results/degradation/cpu/plain20/seed_0"
    kept = [f"{run_dir}/{f}" for f in ("config.json", "metrics.jsonl",
                                         "experiment_run.json", "devices.json")]
    left_out = [f"{run_dir}/checkpoints/100/x", f"{run_dir}/tensorboard/events.x",
                f"{run_dir}/.run.lock", "experiments/results/degradation/cpu/logs/x.log",
                "experiments/results/degradation/cpu/plain20/seed_0.replaced_1/config.json"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *kept, *left_out],
                             cwd=REPO, capture_output=True, text=True).stdout.split()
    assert ignored == left_out


def test_the_cpu_scale_works_beside_its_records_and_other_scales_in_runs(tmp_path):
    (_, workdir, runs), = run._grids(run.parse_args(["degradation", "--scale", "cpu"]))
    assert workdir == run.RESULTS / "degradation" / "cpu"
    assert runs[0].workdir == workdir / "plain20" / "seed_0"
    (_, workdir, _), = run._grids(run.parse_args(["degradation"]))
    assert str(workdir) == "runs/exp/degradation"
    given = run._grids(run.parse_args(["degradation", "--scale", "cpu", "--workdir",
                                       str(tmp_path)]))
    assert given[0][1] == tmp_path
    every = run._grids(run.parse_args(["all", "--scale", "cpu"]))  # Those with the scale.
    assert [workdir.parent.name for _, workdir, _ in every] == [
        name for name in grid.EXPERIMENTS if "cpu" in grid.load(name).SCALES]


def test_report_only_trains_nothing_and_refuses_launch_options(tmp_path, capsys):
    assert run.main(["shortcuts", "--report-only", "--workdir", str(tmp_path)]) == 0
    page = (tmp_path / "results.md").read_text()
    assert "0 runs finished, 9 not yet" in page
    assert not (tmp_path / "resnet20_A").exists()
    for extra in (["--jobs", "2"], ["--task", "0"], ["--launch", "slurm"]):
        with pytest.raises(SystemExit):
            run.parse_args(["shortcuts", "--report-only", *extra])
        assert "--report-only trains nothing" in capsys.readouterr().err
