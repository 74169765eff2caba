"""experiments/: every declared grid is valid, runs end to end for a few steps on the tiny
dataset, and a rerun skips finished runs and sets aside changed ones."""

import csv

import pytest

from experiments import grid, run
from resnet_flax.run.validate import validate

TINY = ["--set", "num_epochs=1", "--set", "batch_size=16", "--set", "eval_batch_size=8",
        "--set", "model_options.width_multiplier=0.25", "--set", "checkpoint_every_steps=100"]


@pytest.mark.parametrize("name", grid.EXPERIMENTS)
@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_every_arm_of_every_scale_is_a_valid_config(name, scale, tmp_path):
    module = grid.load(name)
    assert module.TITLE and module.SOURCE and module.FINDING
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
    """results.csv has one row per quick arm (of ``arms``, if given); the figure is drawn
    and linked."""
    module = grid.load(name)
    with open(workdir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["arm"] for r in rows] == grid.arms(module, "quick", arms)
    figure = "scatter.png" if getattr(module, "PLOT", "") == "scatter" else "curves.png"
    assert (workdir / figure).stat().st_size > 10_000
    assert f"]({figure})" in (workdir / "results.md").read_text()


RERUN = "shortcuts"  # Runs end to end in the rerun test below.
# The arms run end to end: every model option, norm and optimizer the experiment sets,
# at the shallowest depth it has. The others differ from one of these only in depth (or
# are the base recipe without an option, as v1_resnet56): test_zoo trains their nets and
# every arm's config is validated above. (): every arm.
END_TO_END_ARMS = {"degradation": ("plain20", "resnet20"),
                   "depth_width": ("resnet20", "wrn_16_1"),
                   "normalization": ("plain_none", "resnet_bn_zero", "resnet_gn"),
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
    assert run_tiny(RERUN, tiny_data_dir, tmp_path, *extra) == 0  # Every arm.
    err = capfd.readouterr().err
    assert err.count("done, skipped") == 1 and err.count(": training in ") == 2
    assert_results(RERUN, tmp_path)
    changed = ["--set", "lr=0.05", "--arms", "resnet20_B"]
    assert run_tiny(RERUN, tiny_data_dir, tmp_path, *extra, *changed) == 0
    assert capfd.readouterr().err.count("its config changed") == 1
    assert (tmp_path / "resnet20_B" / "seed_0.replaced_1" / "metrics.jsonl").exists()


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
                     "(default: quick)", "(default: runs/exp/<name>)", "--list-arms"):
        assert expected in help_text, expected
    assert run.main(["degradation", "--list-arms"]) == 0
    lines = capsys.readouterr().out.splitlines()
    module = grid.load("degradation")
    assert lines[0] == f"degradation: {module.TITLE}"
    assert lines[1].split() == ["arm", "scales", "config", "overrides"]
    assert [line.split()[0] for line in lines[2:]] == list(module.ARMS)
    assert lines[2].split() == ["plain20", "quick,", "paper", "model='plain_resnet20'"]
    assert lines[3].split() == ["plain32", "paper", "model='plain_resnet32'"]
    with pytest.raises(SystemExit):
        run.main(["--list-arms"])
    assert "give an experiment name" in capsys.readouterr().err
