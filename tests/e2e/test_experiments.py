"""experiments/: every declared grid is valid, runs end to end for a few steps on the tiny
dataset, and a rerun skips finished runs and sets aside changed ones."""

import csv
import dataclasses
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

from experiments import claims, grid, run
from resnet_flax.run.validate import validate

TINY = ["--set", "num_epochs=1", "--set", "batch_size=16", "--set", "eval_batch_size=8",
        "--set", "model_options.width_multiplier=0.25", "--set", "checkpoint_every_steps=100"]


@pytest.mark.parametrize("name,scale", [(name, scale) for name in grid.EXPERIMENTS
                                        for scale in grid.load(name).SCALES])
def test_every_arm_of_every_scale_is_a_valid_config(name, scale, tmp_path):
    module = grid.load(name)
    assert module.TITLE and module.SOURCE and module.FINDING and module.CLAIMS
    for claim in module.CLAIMS:  # Each names arms of the experiment.
        assert set(dataclasses.astuple(claim)[1:3]) <= set(module.ARMS), claim
    runs = grid.expand(module, "fashion_mnist", scale, 2, tmp_path)
    assert {r.seed for r in runs} == {0, 1}
    for r in runs:
        validate(r.config)
    for arm in grid.arms(module, scale):  # Seeds differ in their seed only.
        a, b = (r.config.to_dict() for r in runs if r.arm == arm)
        assert {k for k in a if a[k] != b[k]} == {"seed"}


def run_tiny(name, data_dir, workdir, *extra):
    return run.main([name, "--data_dir", str(data_dir), "--seeds", "1", "--workdir",
                     str(workdir), *TINY, *extra])


def assert_results(name, workdir, arms=()):
    """results.csv has one row per quick arm (of ``arms``, if given); the figures are
    drawn and linked."""
    module = grid.load(name)
    with open(workdir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["arm"] for r in rows] == grid.arms(module, "quick", arms)
    figures = ["scatter.png" if getattr(module, "PLOT", "") == "scatter" else "curves.png",
               *(["batch.png"] if getattr(module, "BATCH_SWEEP", None) else [])]
    for figure in figures:
        assert (workdir / figure).stat().st_size > 10_000
        assert f"]({figure})" in (workdir / "results.md").read_text()


RERUN = "shortcuts"  # Runs end to end in the rerun test below.
# The arms run end to end: every model option, norm and optimizer the experiment sets,
# at the shallowest depth it has. The others differ from one of these only in depth (or
# are the base recipe without an option, as v1_resnet56): test_zoo trains their nets and
# every arm's config is validated above. (): every arm.
END_TO_END_ARMS = {"degradation": ("plain20", "resnet20"),
                   "depth_width": ("resnet20", "wrn_16_1"),
                   "normalization": ("plain_none", "resnet_bn_zero", "resnet_gn",
                                     "resnet_bn_2"),
                   "preactivation": ("v2_resnet56",), "optimizer": ()}


def test_the_end_to_end_arms_are_arms():
    assert set(END_TO_END_ARMS) == set(grid.EXPERIMENTS) - {RERUN}
    for name, arms in END_TO_END_ARMS.items():
        assert grid.arms(grid.load(name), "quick", arms)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(END_TO_END_ARMS))
def test_each_experiment_runs_end_to_end_on_tiny_data(name, tiny_data_dir, tmp_path):
    arms = END_TO_END_ARMS[name]
    selected = ["--arms", ",".join(arms)] if arms else []
    assert run_tiny(name, tiny_data_dir, tmp_path, *selected) == 0
    assert_results(name, tmp_path, arms)


@pytest.mark.slow
def test_a_rerun_skips_finished_runs_and_sets_aside_changed_ones(tiny_data_dir, tmp_path,
                                                                  capfd):
    extra = ["--set", "train_subset=32"]
    assert run_tiny(RERUN, tiny_data_dir, tmp_path, *extra, "--arms", "resnet20_A") == 0
    assert_results(RERUN, tmp_path, ("resnet20_A",))
    capfd.readouterr()
    both = ("resnet20_A", "resnet20_B")  # Every arm is optimizer's end-to-end case.
    assert run_tiny(RERUN, tiny_data_dir, tmp_path, *extra, "--arms", ",".join(both)) == 0
    err = capfd.readouterr().err
    assert err.count("done, skipped") == 1 and err.count(": training in ") == 1
    assert_results(RERUN, tmp_path, both)
    changed = ["--set", "lr=0.05", "--arms", "resnet20_B"]
    assert run_tiny(RERUN, tiny_data_dir, tmp_path, *extra, *changed) == 0
    assert capfd.readouterr().err.count("its config changed") == 1
    assert (tmp_path / "resnet20_B" / "seed_0.replaced_1" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_an_arm_two_experiments_share_trains_once(tiny_data_dir, tmp_path):
    from experiments import report, runner
    from resnet_flax.run import train_loop

    tiny = {"data_dir": str(tiny_data_dir), "num_epochs": 1, "batch_size": 16,
            "eval_batch_size": 8, "model_options.width_multiplier": 0.25,
            "train_subset": 32, "checkpoint_every_steps": 100}

    def runs(name, arm):
        return grid.expand(grid.load(name), "fashion_mnist", "quick", 1, tmp_path / name,
                           tiny, (arm,))[0]

    trained = runs("degradation", "resnet20")
    runner.execute(trained, train_loop.train_and_evaluate)
    shared = dataclasses.replace(runs("shortcuts", "resnet20_A"),
                                 peers=(tmp_path / "degradation",))

    def train_again(config, workdir):
        raise AssertionError("the shared arm trained twice")

    runner.execute(shared, train_again)
    assert runner.status(shared) == "done"
    assert report.run_figures(shared) == report.run_figures(trained)
    assert (shared.workdir / "experiment_run.json").read_text().count("../") == 3
    other = dataclasses.replace(runs("shortcuts", "resnet20_B"),
                                peers=(tmp_path / "degradation",))
    assert runner.twin(other) is None  # Projection shortcuts: another net.


def test_bad_experiment_names_and_overrides_are_one_line(capsys):
    with pytest.raises(SystemExit):
        run.main(["degradatoin"])
    assert "unknown experiment 'degradatoin'; did you mean 'degradation'" in (
        capsys.readouterr().err)
    with pytest.raises(SystemExit):
        run.main(["degradation", "--set", "lrr=0.1"])
    assert "no config field 'lrr'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run.main(["shortcuts", "--arms", "resnet20_A,resnet20_Z"])
    err = capsys.readouterr().err
    assert "--arms 'resnet20_Z' is not an arm of the quick scale; did you mean" in err
    assert err.rstrip().endswith("arms: resnet20_A, resnet20_B, resnet20_C")


def test_help_shows_defaults_and_list_arms_prints_an_experiments_arms(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # Unwrapped.
    for expected in ("--dataset DATASET the dataset every run trains on",
                     "(default: fashion_mnist)", "--seeds N runs per arm", "(default: 3)",
                     "(default: quick)", "(default: experiments/results/<name>/cpu at the cpu",
                     "--report-only", "--list-arms"):
        assert expected in help_text, expected
    assert run.main(["degradation", "--list-arms"]) == 0
    lines = capsys.readouterr().out.splitlines()
    module = grid.load("degradation")
    assert lines[0] == f"degradation: {module.TITLE}"
    assert lines[1].split() == ["arm", "scales", "config", "overrides"]
    assert [line.split()[0] for line in lines[2:]] == list(module.ARMS)
    assert lines[2].split() == ["plain20", "quick,", "cpu,", "gpu,", "paper",
                                "model='plain_resnet20'"]
    assert lines[3].split() == ["plain32", "paper", "model='plain_resnet32'"]
    with pytest.raises(SystemExit):
        run.main(["--list-arms"])
    assert "give an experiment name" in capsys.readouterr().err


def test_all_names_each_experiment_in_a_folder_of_its_name(tmp_path):
    grids = run._grids(run.parse_args(["all", "--scale", "gpu", "--workdir", str(tmp_path)]))
    assert [workdir for _, workdir, _ in grids] == [tmp_path / n for n in grid.EXPERIMENTS]
    for module, _, runs in grids:
        assert {r.config.train_subset for r in runs} == {0}  # The whole training set.
        assert len(runs) == 3 * len(grid.arms(module, "gpu"))
    for bad in (["all", "--task", "0"], ["all", "--launch", "slurm"], ["shortcuts", "--jobs",
                                                                          "2", "--task", "1"]):
        with pytest.raises(SystemExit):
            run.parse_args(bad)


def test_a_signal_that_leaves_runs_unstarted_is_the_grids_exit_status():
    from experiments import pack

    term = int(signal.SIGTERM)
    assert pack.final_status(0, term, left=3) == 128 + term  # The runs in flight finished.
    assert pack.final_status(0, term, left=0) == 0  # Every run had started and finished.
    assert pack.final_status(128 + term, term, left=3) == 128 + term
    assert pack.final_status(2, None, left=5) == 2
    assert pack.final_status(0, None, left=0) == 0


def _row(arm, mean, std, seeds=3):
    return {"arm": arm, "seeds": seeds, "final_test_error_mean": mean,
            "final_test_error_std": std}


def test_a_claim_shows_only_when_its_gap_passes_the_seeds_spread():
    ahead = claims.Ahead("a beats b", "a", "b")
    assert claims.verdicts([ahead], [_row("a", 0.10, 0.01), _row("b", 0.13, 0.01)]) == [
        "**Shows:** a beats b (test error, a 10.00 +- 1.00% against b 13.00 +- 1.00%)."]
    within = claims.verdicts([ahead], [_row("a", 0.10, 0.02), _row("b", 0.13, 0.02)])[0]
    assert within.startswith("**In the predicted order, within the seeds' spread:**")
    one_seed = claims.verdicts([ahead], [_row("a", 0.10, 0.0, 1), _row("b", 0.13, 0.0, 1)])
    assert one_seed[0].startswith("**In the predicted order, within")
    assert claims.verdicts([ahead], [_row("a", 0.14, 0.0), _row("b", 0.13, 0.0)])[0] == (
        "**Does not show:** a beats b (test error, a 14.00 +- 0.00% against b 13.00 +- "
        "0.00%).")
    assert claims.verdicts([ahead], [_row("a", 0.1, 0.0), _row("b", 0, 0, seeds=0)]) == [
        "**Not measured here:** a beats b (no finished run of b at this scale)."]
    close = claims.Close("a is b's", "a", "b", within=0.01)
    assert claims.verdicts([close], [_row("a", 0.10, 0), _row("b", 0.105, 0)])[0].startswith(
        "**Shows:**")
    assert claims.verdicts([close], [_row("a", 0.10, 0), _row("b", 0.125, 0)])[0].startswith(
        "**Does not show:**")
    matches = claims.NotBehind("a matches or beats b", "a", "b", within=0.01)
    for a, shown in ((0.05, "Shows"), (0.105, "Shows"), (0.115, "Does not show")):
        assert claims.verdicts([matches], [_row("a", a, 0.0), _row("b", 0.10, 0.0)])[
            0].startswith(f"**{shown}:** a matches or beats b"), a


@pytest.mark.slow
def test_packed_runs_stop_on_a_signal_and_the_same_command_finishes_them(tiny_data_dir,
                                                                          tmp_path):
    """Two runs at a time in their own processes; SIGTERM while they train: a run in
    training saves and stops, no new one starts, the exit status is 143 and the report
    counts what finished. The same command resumes the stopped runs and trains the
    rest."""
    args = [sys.executable, "-m", "experiments.run", "shortcuts", "--data_dir",
            str(tiny_data_dir), "--seeds", "1", "--workdir", str(tmp_path), "--jobs", "2",
            *TINY, "--set", "num_epochs=20", "--set", "batch_size=8"]
    proc = subprocess.Popen(args, cwd=REPO, stderr=subprocess.PIPE, text=True)
    logs = [tmp_path / "logs" / f"resnet20_{o}_seed_0.log" for o in "AB"]
    deadline = time.monotonic() + 300
    while not all(p.exists() and "epoch 1/20" in p.read_text() for p in logs):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.5)
    # On a loaded machine one run can end all 20 epochs before the other ends its first,
    # and the third starts then, before the signal: allowed. None may start after it.
    third_before = (tmp_path / "logs" / "resnet20_C_seed_0.log").exists()
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err
    # The later to end its first epoch had 19 to go: it saves and stops. The other may
    # be past its last epoch by then.
    stopped = [o for o in "AB" if f"resnet20_{o} seed 0: stopped by SIGTERM; the same "
               "command resumes it" in err]
    assert stopped, err
    assert third_before or "resnet20_C seed 0: started" not in err
    assert " not yet: " in (tmp_path / "results.md").read_text()
    resumed = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    for o in stopped:
        assert "resuming in" in (tmp_path / "logs" / f"resnet20_{o}_seed_0.log").read_text()
    assert "All 3 runs finished." in (tmp_path / "results.md").read_text()


@pytest.mark.slow
def test_packed_runs_stop_starting_on_a_mistake_every_run_would_make(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run", "shortcuts", "--data_dir",
         str(tmp_path / "no_data"), "--seeds", "2", "--workdir", str(tmp_path / "exp"),
         "--jobs", "2", *TINY], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "TFDS dataset 'fashion_mnist' is not prepared" in errors[0]
    assert proc.stderr.count(": started") == 2  # The two in flight; none after.
    assert not (tmp_path / "exp" / "results.md").exists()
