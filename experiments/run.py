r"""Runs ablation experiments end to end: every arm x seed, then each one's table and figure.

    python -m experiments.run degradation --dataset fashion_mnist --scale quick --seeds 3 \
        --workdir runs/exp/degradation
    python -m experiments.run all --scale gpu --jobs 4 --workdir runs/exp
    python -m experiments.run --list
    python -m experiments.run degradation --list-arms
    python -m experiments.run degradation --seeds 3 --launch slurm --sbatch="--gpus=1"

``all`` runs every experiment, each in ``<workdir>/<name>``. Without ``--workdir``, the
``cpu`` scale works in ``experiments/results/<name>/cpu``, where each finished run's
record (its config, ``metrics.jsonl`` and the runner's record; never checkpoints) is
committed: the same command on a fresh clone skips those runs and trains the rest, and
``--report-only`` writes the pages from the records, training nothing. ``--arms a,b`` trains and
reports only those arms. ``--jobs N`` trains N runs at once, each in its own process
(``experiments/pack.py``: on one GPU, each a share of its memory). Running the same
command again skips finished runs, resumes an interrupted one from its checkpoint, and
sets aside (never deletes) and reruns a run whose arm changed. Writes ``results.csv``,
``results.md`` (with what of the published finding shows) and ``curves.png``
(``scatter.png`` for depth_width) in the workdir from the runs finished so far, also
when a signal stops the grid, and each run's usual outputs in
``<workdir>/<arm>/seed_<s>/``. ``--launch slurm`` submits the runs as one SLURM job
array and the report as a job after it (``experiments/slurm.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import shlex
import sys

from experiments import grid, pack, report, runner, slurm
from resnet_flax import cli
from resnet_flax.cli import setup

# Scales whose runs' records are committed, in RESULTS/<name>/<scale> (the default workdir).
RECORDED_SCALES = ("cpu",)
RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = cli.ArgumentParser(prog="python -m experiments.run", description=__doc__.split(
        "\n")[0])
    parser.add_argument("name", nargs="?", help="the experiment (see --list), or all")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--list-arms", action="store_true",
                        help="list the experiment's arms (each with its config overrides and "
                             "the scales that run it) and exit")
    parser.add_argument("--dataset", default="fashion_mnist",
                        help="the dataset every run trains on, built as in docs/data.md: "
                             "fashion_mnist, mnist, cifar10, ..., or folder:PATH, a folder of "
                             "your own images (default: %(default)s)")
    parser.add_argument("--data_dir", default="",
                        help="TFDS data dir (default: TFDS's, $TFDS_DATA_DIR or "
                             "~/tensorflow_datasets)")
    parser.add_argument("--scale", default="quick",
                        help="quick (a smoke test: minutes), cpu (the finding on a 2-core "
                             "CPU: 3 seeds in about 90 minutes; its records are committed), "
                             "gpu (the whole training set, each experiment's 3 seeds in "
                             "minutes of one GPU) or paper (the published schedule) "
                             "(default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=3, metavar="N",
                        help="runs per arm, seeds 0..N-1; they differ only in config.seed "
                             "(default: %(default)s)")
    parser.add_argument("--arms", default="", metavar="ARM,ARM",
                        help="train and report only these arms (default: every arm of the "
                             "scale); a later run without it skips their finished runs")
    parser.add_argument("--workdir", help="where the runs and the results go (default: "
                                          "experiments/results/<name>/cpu at the cpu "
                                          "scale, beside the committed records; else "
                                          "runs/exp/<name>; with all, each experiment in a "
                                          "folder of its name)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="train N runs at once, each in a process of its own (on one "
                             "GPU: a 1/N share of its memory each) (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run, after the experiment's "
                             "(repeatable; e.g. --set num_epochs=2)")
    parser.add_argument("--launch", choices=("local", "slurm"), default="local",
                        help="local: train the runs here, one after another; slurm: submit "
                             "them as one SLURM job array (a task per run) and the report "
                             "as a job after it (default: %(default)s)")
    parser.add_argument("--sbatch", default="", metavar="OPTIONS",
                        help="sbatch options for both jobs of --launch slurm, as one string "
                             "(e.g. --sbatch=\"--partition=gpu --gpus=1 --time=4:00:00\")")
    parser.add_argument("--report-only", action="store_true",
                        help="write results.md, results.csv and the figure from the runs "
                             "finished so far, training nothing")
    parser.add_argument("--task", type=int, metavar="I",
                        help="train only the I-th run of the grid (from 0) and write no "
                             "report: what each task of --launch slurm's array runs")
    args = parser.parse_args(argv)
    _check(parser, args)
    args.overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item}: give KEY=VALUE")
        args.overrides[key] = _literal(value)
    return args


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses (``parser.error``) options that do not go together."""
    if args.task is not None and args.launch == "slurm":
        parser.error("--task runs one run here; it does not go with --launch slurm")
    if args.sbatch and args.launch != "slurm":
        parser.error("--sbatch goes with --launch slurm")
    if not args.list and not args.name:
        parser.error("give an experiment name, or --list"
                     + (" (--list-arms lists the arms of the one named)" if args.list_arms
                        else ""))
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give at least 1")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give at least 1")
    if args.name == "all" and (args.task is not None or args.launch == "slurm"
                               or args.list_arms):
        parser.error("all goes with local runs only: name one experiment for --task, "
                     "--launch slurm or --list-arms")
    if args.jobs > 1 and (args.task is not None or args.launch == "slurm"):
        parser.error("--jobs trains here: it does not go with --task or --launch slurm")
    if args.report_only and (args.task is not None or args.launch == "slurm"
                             or args.jobs > 1):
        parser.error("--report-only trains nothing: it does not go with --task, --jobs or "
                     "--launch slurm")


def _literal(text: str):
    """``3`` -> 3, ``(4, 5)`` -> a tuple, ``True``, ``0.1``; anything else stays a string."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def arms_table(module) -> str:
    """The experiment's arms, one a line: the scales that run it and its config overrides."""
    scales = {arm: ", ".join(name for name in module.SCALES if arm in grid.arms(module, name))
              for arm in module.ARMS}
    rows = [("arm", "scales", "config overrides")] + [
        (arm, scales[arm] or "none", " ".join(f"{k}={v!r}" for k, v in overrides.items())
         or "none: the base config") for arm, overrides in module.ARMS.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{module.__name__.rsplit('.', 1)[-1]}: {module.TITLE}"]
    lines += [f"  {arm:{widths[0]}s}  {used:{widths[1]}s}  {changes}"
              for arm, used, changes in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in grid.EXPERIMENTS:
            module = grid.load(name)
            print(f"{name:14s} {module.TITLE}")
        return 0
    if args.list_arms:
        try:
            print(arms_table(grid.load(args.name)))
        except ValueError as e:
            cli.fail(str(e))
        return 0
    grids = _grids(args)
    if args.launch == "slurm":
        (module, workdir, runs), = grids
        try:
            array, after = slurm.submit(args, runs, workdir, args.sbatch)
        except slurm.LaunchError as e:
            cli.fail(str(e))
        print(f"submitted job array {array} ({len(runs)} runs, {workdir}/slurm/tasks.txt) "
              f"and job {after}, which writes the report once they all succeed",
              file=sys.stderr)
        return 0
    if args.task is not None:
        (_, _, runs), = grids
        if not 0 <= args.task < len(runs):
            cli.fail(f"--task {args.task}: the grid has runs 0 to {len(runs) - 1}")
        return _train([runs[args.task]])
    if args.report_only:
        status = 0
    elif args.jobs > 1:
        status = pack.run_all(args, [pack.Task(module.__name__.rsplit(".", 1)[-1], i, run,
                                               workdir)
                                     for module, workdir, runs in grids
                                     for i, run in enumerate(runs)], args.jobs)
    else:
        status = _train([run for _, _, runs in grids for run in runs])
    if status == 2:  # A mistake (its line printed): nothing to report.
        return status
    command = page_command(args)
    for module, workdir, runs in grids:  # From what finished, also after a stop.
        workdir.mkdir(parents=True, exist_ok=True)
        report.write(module, runs, workdir, command, args.scale)
        print(f"wrote {workdir}/results.md, results.csv and its figure", file=sys.stderr)
    return status


def page_command(args: argparse.Namespace) -> str:
    """The command a results page gives: what trains these runs, whichever way they were
    launched (``--jobs``, ``--launch`` and ``--report-only`` leave the runs as they are)."""
    out = ["python -m experiments.run", args.name]
    if args.dataset != "fashion_mnist":
        out += ["--dataset", args.dataset]
    out += ["--scale", args.scale, "--seeds", str(args.seeds)]
    for flag, value in (("--arms", args.arms), ("--workdir", args.workdir),
                        ("--data_dir", args.data_dir)):
        if value:
            out += [flag, value]
    for item in args.set:
        out += ["--set", item]
    return f"{out[0]} {shlex.join(out[1:])}"


def default_workdir(name: str, scale: str) -> pathlib.Path:
    """Where experiment ``name`` works without ``--workdir``: beside its committed records
    at a ``RECORDED_SCALES`` scale, else ``runs/exp/<name>``."""
    if scale in RECORDED_SCALES:
        return RESULTS / name / scale
    return pathlib.Path("runs/exp") / name


def _grids(args: argparse.Namespace) -> list[tuple]:
    """(module, workdir, runs) of each experiment the command line names."""
    if args.name != "all":
        return [_grid(args, args.name, pathlib.Path(args.workdir) if args.workdir else
                      default_workdir(args.name, args.scale))]
    names = [name for name in grid.EXPERIMENTS if args.scale in grid.load(name).SCALES]
    for name in sorted(set(grid.EXPERIMENTS) - set(names)):
        print(f"{name}: no {args.scale} scale; left out", file=sys.stderr)
    if args.workdir:
        return [_grid(args, name, pathlib.Path(args.workdir) / name) for name in names]
    return [_grid(args, name, default_workdir(name, args.scale)) for name in names]


def _peers(args: argparse.Namespace, name: str) -> tuple[pathlib.Path, ...]:
    """The other experiments' workdirs where this command line puts them (none known for
    one experiment in a ``--workdir`` of its own)."""
    others = [n for n in grid.EXPERIMENTS if n != name]
    if args.workdir:
        root = pathlib.Path(args.workdir)
        return tuple(root / n for n in others) if args.name == "all" else ()
    return tuple(default_workdir(n, args.scale) for n in others)


def _grid(args: argparse.Namespace, name: str, workdir: pathlib.Path):
    """(module, workdir, runs) of experiment ``name``, every run's config validated."""
    try:
        module = grid.load(name)
        extra = {**({"data_dir": args.data_dir} if args.data_dir else {}), **args.overrides}
        only = tuple(a.strip() for a in args.arms.split(",") if a.strip())
        runs = grid.expand(module, args.dataset, args.scale, args.seeds, workdir, extra, only)
        runs = [dataclasses.replace(r, peers=_peers(args, name)) for r in runs]
    except (ValueError, KeyError) as e:
        cli.fail(str(e))
    from resnet_flax.config import ConfigError
    from resnet_flax.run.validate import validate

    for run in runs:
        try:
            validate(run.config)
        except ConfigError as e:
            cli.fail(f"{run.arm}: {e}")
    return module, workdir, runs


def _train(runs: list[grid.Run]) -> int:
    """Trains (or skips, or resumes) each run here; the exit status."""
    setup.start()  # The set-up main's runs have: their XLA:CPU flags and compile cache.
    from resnet_flax.config import ConfigError
    from resnet_flax.data import folder_changes
    from resnet_flax.data.tfds_source import DatasetUnavailable
    from resnet_flax.run import preemption, train_loop
    from resnet_flax.workdir.lock import WorkdirError

    try:  # Once, before the first run: a folder changed since its build.
        for config in {r.config.dataset: r.config for r in runs}.values():
            folder_changes.report(config)
    except DatasetUnavailable as e:
        cli.fail(str(e))
    for run in runs:
        try:
            runner.execute(run, train_loop.train_and_evaluate)
        except (DatasetUnavailable, ConfigError, WorkdirError) as e:  # As main: one line.
            cli.fail(f"{run.arm} seed {run.seed}: {e}")
        except preemption.Stopped as e:  # The same command resumes it and the rest.
            print(f"{run.arm} seed {run.seed}: {e}", file=sys.stderr, flush=True)
            return e.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(main())
