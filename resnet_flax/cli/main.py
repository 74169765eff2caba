"""Command line: train and evaluate a config in a workdir.

    python -m resnet_flax.main --config configs/fashion_mnist_cpu.py --workdir runs/fm_cpu

trains the CPU quick-start recipe (README); ``--config.key=value`` overrides a field of
the config (``--config.lr=0.05``). Running the same command again resumes from the
workdir's latest checkpoint. ``--mode eval [--checkpoint best|STEP]`` evaluates a
checkpoint on the test split without training (``resnet_flax/run/evaluate.py``), with
the workdir's own ``config.json`` when ``--config`` is not given:

    python -m resnet_flax.main --workdir runs/fm_cpu --mode eval

``--mode eval --weights resnet50.tv2_in1k`` evaluates pretrained weights by name on a
built ``imagenet2012`` instead (``run/evaluate_pretrained.py``).

Several processes (hosts) train one model with --num_processes=N --process_id=i
--coordinator_address=HOST:PORT, or with no flags under a cluster launcher JAX knows
(srun, mpirun, a multi-host TPU slice); the mesh then spans every process's devices.
A mistake in the command or config is reported as one ``error: ...`` line (exit
status 2) before anything is written; ``--verbosity=1`` shows the traceback. A run that
cannot start (its dataset is missing, say) removes the workdir it created, if still empty.
"""

import errno
import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from resnet_flax import cli
from resnet_flax.cli import peers, setup
from resnet_flax.config import ConfigError
from resnet_flax.run.validate import validate
from resnet_flax.workdir import resume_guard

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A config file from configs/ (required to train; --mode eval without it "
    "uses the workdir's config.json).", lock_config=True)
_HOST_DEVICES = flags.DEFINE_integer(
    "host_devices", None,
    "Virtual XLA devices to split a CPU into (default: cli.host_devices.default_count(): "
    "1 with Eigen convolutions, else one per core, at most 8). "
    "Ignored when XLA_FLAGS already sets --xla_force_host_platform_device_count.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for a multi-process run.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index in the run.")
_PEER_TIMEOUT = flags.DEFINE_integer(
    "peer_timeout", 20, "Seconds without a heartbeat after which a process of a "
    "multi-process run counts as lost: the others stop with one line, exit status 75.")
_MODE = flags.DEFINE_enum(
    "mode", "train", ["train", "eval"],
    "train: train, resuming from the latest checkpoint; eval: evaluate a checkpoint on the "
    "test split (metrics, per-class accuracy, confusion matrix in <workdir>/eval/).")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "latest",
    "With --mode eval: which checkpoint, `latest`, `best` (by config.best_metric) or a step.")
_WEIGHTS = flags.DEFINE_string(
    "weights", None,
    "With --mode eval: pretrained weights by name (resnet50.tv2_in1k) to evaluate instead "
    "of a checkpoint, on --config.dataset (default imagenet2012), results in <workdir>/eval/.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "With --mode eval: the folder the results go to (default <workdir>/eval; "
    "for a workdir that cannot be written).")
flags.mark_flags_as_required(["workdir"])  # --config: only to train (main says so).


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; settings go in --config.key=value")
    verbose = flags.FLAGS["verbosity"].present
    if not verbose:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
    evaluating = _MODE.value == "eval"
    _check_mode_flags(evaluating)
    config = _CONFIG.value
    try:
        if config is None and _WEIGHTS.value:
            from resnet_flax.config import default_config

            config = default_config()
            config.dataset = "imagenet2012"
        elif config is None:
            if not evaluating:
                cli.fail("--config is required to train: give a recipe, e.g. --config "
                         "configs/fashion_mnist_cpu.py (--mode eval without it uses the "
                         "workdir's config.json)")
            config = resume_guard.load(pathlib.Path(_WORKDIR.value).expanduser())
        if not _WEIGHTS.value:  # Weights set the model and crop first (run/evaluate_pretrained).
            validate(config)  # Before any data is read or file written.
    except ConfigError as e:
        _user_error(e)
    created = [] if evaluating else _check_workdir(_WORKDIR.value)
    _start(verbose)
    from resnet_flax.data.tfds_source import DatasetUnavailable
    from resnet_flax.run import evaluate, preemption
    from resnet_flax.workdir.checkpoint import CheckpointError
    from resnet_flax.workdir.lock import WorkdirError

    try:
        if _WEIGHTS.value:
            from resnet_flax.run import evaluate_pretrained

            with cli.stops_on_signals("evaluation"):
                evaluate_pretrained.console(evaluate_pretrained.evaluate_pretrained(
                    config, _WEIGHTS.value, _WORKDIR.value, _OUTPUT.value))
        elif evaluating:
            with cli.stops_on_signals("evaluation"):
                result = evaluate.evaluate_checkpoint(config, _WORKDIR.value,
                                                      _CHECKPOINT.value, _OUTPUT.value)
                evaluate.console(result, _WORKDIR.value, _OUTPUT.value)
        else:
            _train(config)
    except preemption.Stopped as e:  # Asked to stop, and nothing lost: not an error.
        print(e, file=sys.stderr, flush=True)
        raise SystemExit(e.exit_status) from None
    # Each says what happened and what to do; a traceback would bury that.
    except (DatasetUnavailable, ConfigError, CheckpointError, FloatingPointError,
            WorkdirError) as e:
        _remove_if_empty(created)  # A run that never started leaves no empty folder.
        _user_error(e)


def _start(verbose: bool) -> None:
    """The process's set-up, the multi-process run it joins, and the watch on its peers."""
    processes = setup.Processes(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                _PEER_TIMEOUT.value)
    joined = setup.start(_HOST_DEVICES.value, processes=processes, silence=not verbose)
    import jax  # After the set-up: JAX's backends read its flags when they start.

    if joined and _NUM_PROCESSES.value <= 1 and jax.process_index() == 0:
        print(f"multi-process run set up by {joined}", file=sys.stderr, flush=True)
    if jax.process_count() > 1:  # A lost process then ends this one at once, wherever it is.
        peers.watch(_WORKDIR.value, _PEER_TIMEOUT.value)


# What the storage says when it refuses a run's file (a checkpoint's refusal is its own).
_STORAGE_REFUSALS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _train(config) -> None:
    """Trains; a lost peer process ends this one at once, in one line (``peers``), and
    so does storage that refuses a run's file (a full disk on a rerun's first write)."""
    from resnet_flax.run import train_loop
    from resnet_flax.workdir.lock import WorkdirError

    try:
        train_loop.train_and_evaluate(config, _WORKDIR.value)
    except OSError as e:
        if e.errno not in _STORAGE_REFUSALS:
            raise
        remedy = "give another --workdir" if e.errno == errno.EROFS else \
            "free space or give another --workdir"
        raise WorkdirError(f"cannot write {e.filename or _WORKDIR.value}: {e.strerror}; "
                           f"{remedy}, then run the same command to resume") from e
    except Exception as e:  # noqa: BLE001 - only a lost peer is handled; the rest re-raised.
        if peers.peer_lost(e):
            peers.exit_peer_lost(e, _WORKDIR.value)
        raise


def _check_workdir(path: str) -> list[pathlib.Path]:
    """Creates the workdir (and its missing parents); returns the folders it created,
    deepest first."""
    workdir = pathlib.Path(path).expanduser()
    if workdir.exists() and not workdir.is_dir():
        cli.fail(f"--workdir {path} is a file; give a folder (it is created if new)")
    created = [p for p in (workdir, *workdir.parents) if not p.exists()]
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        cli.fail(f"--workdir {path} cannot be created: {e.strerror or e}")
    return created


def _remove_if_empty(created: list[pathlib.Path]) -> None:
    """Removes the folders this invocation created, deepest first, while they are empty
    (``rmdir`` removes nothing else; another process may have written or removed one)."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def _check_mode_flags(evaluating: bool) -> None:
    """The flags that only evaluation takes, and the run evaluation needs."""
    if _OUTPUT.value and not evaluating:
        cli.fail("--output goes with --mode eval (training writes into --workdir)")
    if _WEIGHTS.value and not evaluating:
        cli.fail("--weights goes with --mode eval (to train from weights: "
                 f"--config.init_from={_WEIGHTS.value})")
    if evaluating and not _WEIGHTS.value:
        _check_eval_flags(_WORKDIR.value, _CHECKPOINT.value)


def _check_eval_flags(path: str, which: str) -> None:
    problem = cli.checkpoint_choice_problem(which)
    if problem:
        cli.fail(problem)
    if not pathlib.Path(path).expanduser().is_dir():
        cli.fail(f"--workdir {path} is not a folder: there is no run to evaluate")


def _user_error(e: Exception) -> None:
    if flags.FLAGS.verbosity >= 1:
        raise e
    cli.fail(str(e))


def run() -> None:
    """The command: absl parses the flags (mistakes in one line), then ``main``. Its
    ``--help`` shows this module's docstring and flags (absl's shows ``__main__``'s)."""
    command = sys.modules["__main__"]
    command.__doc__ = __doc__
    for flag in flags.FLAGS.get_flags_for_module(__name__):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
