"""``train_and_evaluate(config, workdir)``: the training loop, evaluation and resume."""

from __future__ import annotations

import collections
import functools
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from resnet_flax.config import ConfigError, ranking_metric
from resnet_flax.data import datasets, folder_changes, pipeline, sources
from resnet_flax.run import finetune, preemption
from resnet_flax.run.assemble import build, seed_keys
from resnet_flax.run.validate import validate
from resnet_flax.train import callbacks, chunks, parallel, steps
from resnet_flax.train import state as state_lib
from resnet_flax.workdir import checkpoint, lock, metrics, resume_guard


def _sum(a, b):
    return b if a is None else jax.tree.map(jnp.add, a, b)


def _means(sums, prefix: str) -> dict[str, float]:
    sums = jax.device_get(sums)
    count = float(sums["count"])
    return {f"{prefix}_loss": float(sums["loss_sum"]) / count,
            f"{prefix}_accuracy": float(sums["correct"]) / count}


def _check_finite(sums, step: int, ckpt: checkpoint.Checkpointer) -> None:
    """Fail fast on NaN/inf loss, before a bad state could be checkpointed."""
    if sums is not None and float(sums["nonfinite"]) > 0:
        raise FloatingPointError(
            f"non-finite training loss, gradients or BatchNorm statistics by step {step}; "
            f"{ckpt.last_good()}. {steps.DIVERGED_CAUSES}")


# The loss is checked this many steps late: those sums are computed by then, so reading
# them does not wait for the device.
FINITE_CHECK_LAG = 8


class Trainer:
    """Compiled steps and placed data for one config; ``evaluate`` and ``train_steps``."""

    def __init__(self, config, source: sources.Device | sources.Stream, mesh=None):
        self.config = config
        self.spec = datasets.get(config.dataset, config.data_dir or None)
        self.mesh = mesh or parallel.make_mesh()
        parallel.check_divisible(config.batch_size, self.mesh, "batch_size")
        parallel.check_divisible(config.eval_batch_size, self.mesh, "eval_batch_size")
        self.mode = parallel.mode(config.parallelism, self.mesh)
        self.source = source
        source.place(self.mode, config)
        self.num_train, self.num_test = source.num_train, source.num_test
        if config.batch_size > source.num_train:  # What only the data can tell.
            raise ConfigError(f"config.batch_size={config.batch_size} exceeds the "
                              f"{source.num_train} training examples: give at most "
                              f"{source.num_train}")
        self.steps_per_epoch = pipeline.steps_per_epoch(source.num_train, config.batch_size)
        self.total_steps = config.num_epochs * self.steps_per_epoch

        built = build(config, self.spec.num_classes, source.image_shape, self.steps_per_epoch,
                      functools.partial(self.mode.step_model,
                                        sync_batch_stats=config.sync_batch_stats))
        self.model, self.lr, self.state = built.model, built.lr, built.state
        self.step_key = self.mode.put_replicated(jax.random.key_data(seed_keys(config)[1]))
        self.ema = config.ema_decay > 0
        cfg, batch = steps.step_config(config, self.mode.axis_name), source.batch

        def train(state, data, key):
            return steps.train_step(state, batch(data), key, cfg)

        def evaluate(ema):
            return self.mode.eval_step(lambda state, data: steps.eval_step(
                state, batch(data), cfg, ema))

        self._train_step = self.mode.train_step(train)
        self._train_chunk = None
        if config.steps_per_dispatch > 1:
            self._train_chunk = self.mode.train_step(chunks.chunk_of(steps.train_step, batch, cfg))
            shapes = jax.eval_shape(self._train_step, self._state,
                                    source.example_train_args(), self.step_key)[1]
            # Where each chunk's running metric sums start: 0 + m is m, bit for bit.
            self._zero_sums = self.mode.put_replicated(
                jax.tree.map(lambda s: np.zeros((), s.dtype), shapes))
        # Metric prefix -> eval step. With an EMA, "test" is the EMA model and
        # "test_live" the weights being trained.
        self._eval_steps = {"test": evaluate(self.ema)}
        if self.ema:
            self._eval_steps["test_live"] = evaluate(False)

    @property
    def state(self) -> state_lib.TrainState:
        """The train state in jit's layout (what checkpoints hold), whatever the mode."""
        return self.mode.canonical(self._state)

    @state.setter
    def state(self, value: state_lib.TrainState) -> None:
        self._state = self.mode.put_state(value)

    def start_from(self, variables: dict) -> None:
        """Restarts training from ``variables`` (fine-tuning's first state)."""
        self.state = jax.device_get(self.state).with_variables(variables)

    def compile(self) -> float:
        """Compiles both steps ahead of the first batch; returns seconds taken."""
        start = time.perf_counter()
        self._train_step = self._train_step.lower(
            self._state, self.source.example_train_args(), self.step_key).compile()
        if self._train_chunk is not None:
            width = self.config.steps_per_dispatch
            self._train_chunk = self._train_chunk.lower(
                self._state, self._zero_sums, self.source.example_chunk_args(width),
                self.mode.put_replicated(np.int32(width)), self.step_key).compile()
        for prefix, step in self._eval_steps.items():
            self._eval_steps[prefix] = step.lower(
                self._state, self.source.example_eval_args()).compile()
        return time.perf_counter() - start

    def evaluate(self) -> dict[str, float]:
        """Loss and accuracy over every test example exactly once (per evaluated model:
        the test set is read once for all of them)."""
        sums = dict.fromkeys(self._eval_steps)
        for batch in self.source.eval_batches():
            for prefix, step in self._eval_steps.items():
                sums[prefix] = _sum(sums[prefix],
                                    self.mode.canonical(step(self._state, batch)))
        out = {}
        for prefix in self._eval_steps:
            out.update(_means(sums[prefix], prefix))
        return out

    def train_steps(self, epoch: int, first: int, on_step=None):
        """Runs steps ``first``.. of ``epoch``; returns the summed step metrics."""
        if self._train_chunk is not None:
            return self._train_chunks(epoch, first, on_step)
        sums = None
        bar = progress_bar(self.source.train_batches(epoch, first), epoch,
                           self.config.num_epochs, first, self.steps_per_epoch,
                           enabled=self.config.progress_bar and jax.process_index() == 0)
        for i, batch in enumerate(bar, start=first):
            self._state, step_metrics = self._train_step(self._state, batch, self.step_key)
            sums = _sum(sums, self.mode.canonical(step_metrics))
            if on_step is not None:
                on_step(epoch * self.steps_per_epoch + i + 1, sums)
        return sums

    def _train_chunks(self, epoch: int, first: int, on_step=None):
        """``train_steps`` as chunks of ``config.steps_per_dispatch`` steps, each one
        dispatch; a chunk ends at a checkpoint's step too, so ``on_step`` (called after
        each chunk) saves where the step-by-step loop would."""
        c, per_epoch = self.config, self.steps_per_epoch
        lengths = chunks.lengths(epoch * per_epoch + first, (epoch + 1) * per_epoch,
                                c.steps_per_dispatch, c.checkpoint_every_steps)
        bar = progress_bar(None, epoch, c.num_epochs, first, per_epoch,
                           enabled=c.progress_bar and jax.process_index() == 0)
        sums, step = self._zero_sums, epoch * per_epoch + first
        data_of = self.source.train_chunks(epoch, lengths, c.steps_per_dispatch)
        for length, data in zip(lengths, data_of):
            self._state, sums = self._train_chunk(
                self._state, sums, data, self.mode.put_replicated(np.int32(length)),
                self.step_key)
            step += length
            bar.update(length)
            if on_step is not None:
                on_step(step, self.mode.canonical(sums))
        bar.close()
        return self.mode.canonical(sums)


def progress_bar(batches, epoch: int, num_epochs: int, first: int, total: int,
                 enabled: bool = True):
    """``batches`` (or None: updated by hand) with the epoch's progress bar on stderr.
    Its finished line stays, with the epoch's time and speed, above the epoch's summary
    line (``metrics.console``):

        epoch 1/6 train: 100%|##########| 469/469 [02:10<00:00,  3.60step/s]
        epoch 1/6: train_loss=... test_accuracy=... learning_rate=...
    """
    return tqdm.tqdm(batches, initial=first, total=total, desc=f"epoch {epoch + 1}/"
                     f"{num_epochs} train", leave=True, disable=not enabled, unit="step",
                     file=sys.stderr)


def _fine_tuning_start(config, trainer: Trainer, workdir: pathlib.Path, lead: bool) -> None:
    """A new run with ``init_from`` starts from those weights instead of random ones
    (checked before ``checkpoints/`` exists; a resumed run has its own)."""
    if config.init_from and not checkpoint.has_checkpoints(workdir):
        trainer.start_from(finetune.initial_variables(config, trainer.state.variables()))
        if lead:
            print(f"fine-tuning from {config.init_from} (head: {config.init_head}; frozen: "
                  f"{config.freeze or 'nothing'})", file=sys.stderr, flush=True)


def _stop_early(config, trainer: Trainer, ckpt: checkpoint.Checkpointer, summary: dict,
                epoch: int, lead: bool) -> bool:
    """Applies the epoch's plateau/early-stopping decisions; True when training stops (with
    the best epoch's weights, if ``restore_best``, in the state to be saved)."""
    if not callbacks.active(config):
        return False
    step = (epoch + 1) * trainer.steps_per_epoch
    decided = callbacks.on_epoch_end(config, callbacks.state_of(trainer.state.opt_state),
                                     summary, epoch + 1, float(trainer.lr(step - 1)))
    trainer.state = trainer.state.replace(
        opt_state=callbacks.with_state(trainer.state.opt_state, decided))
    if not int(decided.stopped_epoch):
        return False
    early, note = config.early_stopping, ""
    # The best saved epoch by the monitor (this one, no improvement, is not saved yet).
    best = ckpt.best_step() if early.restore_best else None
    if best is not None:
        best_state = ckpt.restore_step(trainer.state, best)
        trainer.state = trainer.state.replace(params=best_state.params,
                                              batch_stats=best_state.batch_stats,
                                              ema=best_state.ema)
        note = f"; the weights are step {best}'s (best {early.monitor})"
    if lead:
        print(f"early stopping after epoch {epoch + 1}: {early.monitor} has not improved "
              f"for {early.patience} epochs{note}", file=sys.stderr, flush=True)
    return True


def _epoch_summary(trainer: Trainer, sums, seconds: float, epoch: int) -> dict:
    step = (epoch + 1) * trainer.steps_per_epoch
    scale = callbacks.lr_scale(trainer.state.opt_state)
    return {**_means(sums, "train"), **trainer.evaluate(),
            "learning_rate": float(trainer.lr(step - 1)) * scale,
            "images_per_sec": float(sums["count"]) / seconds, "epoch": epoch + 1}


def _resume(config, workdir: pathlib.Path):
    """(trainer, checkpointer, start step): the config checked against the workdir, the
    data loaded, the state restored (or fine-tuning's first one) and config.json written."""
    changed = resume_guard.check(config, workdir)  # Before anything else is written.
    if (workdir / "checkpoints").exists() and not (workdir / "checkpoints").is_dir():
        raise lock.WorkdirError(f"{workdir / 'checkpoints'} is a file, where this run's "
                                "checkpoints go: move it, or give another --workdir")
    if config.init_from and not checkpoint.has_checkpoints(workdir):
        finetune.check_source(config)  # Only a new run reads it.
    lead = jax.process_index() == 0
    folder_changes.report(config, lead)  # Before the workdir: a stale folder writes nothing.
    workdir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, sources.open_source(config))
    _fine_tuning_start(config, trainer, workdir, lead)
    ckpt = checkpoint.Checkpointer(str(workdir), config.checkpoint_every_steps,
                                   config.keep_checkpoints, best_metric=ranking_metric(config))
    trainer.state = ckpt.restore_latest(trainer.state)
    start = int(trainer.state.step)
    trainer.source.resume(ckpt.restored_position, start)
    devices = trainer.mesh.devices.size
    moved = resume_guard.device_change(workdir, devices) if start else {}
    warning = resume_guard.ghost_statistics_warning(config, workdir, moved)
    if lead:  # The config as run, once it has been checked, built and restored.
        if warning:
            print(warning, file=sys.stderr, flush=True)
        resume_guard.record(config, workdir, {**changed, **moved}, start, devices)
    return trainer, ckpt, start


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint.

    Writes checkpoints, ``metrics.jsonl``, TensorBoard events, ``curves.png`` and
    ``config.json`` to ``workdir``; returns the last epoch's metrics. Resuming with a
    config that trains differently is refused (``resume_guard``), and so is a workdir
    another run is training in (``workdir.lock``).
    """
    validate(config)  # Before the lock: a config no run could use writes nothing.
    with (lock.held(pathlib.Path(workdir), active=jax.process_index() == 0),
          preemption.Stop(jax.process_count()) as stop):
        return _train(config, pathlib.Path(workdir), stop)


def _step_hooks(config, trainer, ckpt: checkpoint.Checkpointer, stop: preemption.Stop,
                late_save: bool):
    """(what runs after each train step, what saves and stops on a signal): the lagged
    finiteness check, mid-epoch saves, and a stop asked for mid-epoch."""

    def save_and_stop(step, sums):
        _check_finite(sums, step, ckpt)
        ckpt.save(trainer.state, force=True, position=trainer.source.position())
        ckpt.wait()  # The checkpoint is on disk before the process goes.
        raise preemption.Stopped(stop.signum, step, ckpt.directory)

    recent = collections.deque()  # (step, sums) of the last steps, oldest first.

    def on_step(step, sums):
        recent.append((step, sums))
        if len(recent) > FINITE_CHECK_LAG:
            _check_finite(*recent.popleft()[::-1], ckpt)
        epoch_end = step % trainer.steps_per_epoch == 0
        if step % config.checkpoint_every_steps == 0 and not (epoch_end and late_save):
            _check_finite(sums, step, ckpt)
            ckpt.save(trainer.state, position=trainer.source.position())
        if not epoch_end and stop.requested():  # At an epoch's end: after its row.
            save_and_stop(step, sums)

    return on_step, save_and_stop


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path,
           stop: preemption.Stop) -> dict[str, float]:
    """``train_and_evaluate`` once the workdir is this run's; ``preemption.Stopped`` after
    saving the step it was in when a signal asks it to stop."""
    began = time.perf_counter()
    trainer, ckpt, start = _resume(config, workdir)
    lead = jax.process_index() == 0
    if lead:
        metrics.console_start(workdir, start, config.num_epochs * trainer.steps_per_epoch,
                              trainer.steps_per_epoch)
    compile_seconds = trainer.compile()
    writer = metrics.MetricWriter(str(workdir), active=lead, resume_step=start)
    # Epoch ends saved after the epoch's metrics and decisions (best ranking, callbacks).
    late_save = bool(ranking_metric(config)) or callbacks.active(config)

    on_step, save_and_stop = _step_hooks(config, trainer, ckpt, stop, late_save)
    summary, train_seconds = {}, 0.0  # Time in train steps, this process: time-to-accuracy.
    try:
        first_epoch = start // trainer.steps_per_epoch
        for epoch in range(first_epoch, config.num_epochs):
            if callbacks.stopped(trainer.state.opt_state):
                break
            first = max(start - epoch * trainer.steps_per_epoch, 0)
            tic = time.perf_counter()
            sums = trainer.train_steps(epoch, first, on_step)
            jax.block_until_ready(trainer.state)
            seconds = time.perf_counter() - tic
            train_seconds += seconds
            step = (epoch + 1) * trainer.steps_per_epoch
            _check_finite(sums, step, ckpt)
            summary = {**_epoch_summary(trainer, sums, seconds, epoch),
                       "train_seconds": train_seconds}
            if epoch == first_epoch:
                summary["compile_seconds"] = compile_seconds
            if first > 0:  # Resumed mid-epoch: train_* cover only the steps after it.
                summary["resumed_at_step"] = start
            writer.write(step, summary)
            stop_early = _stop_early(config, trainer, ckpt, summary, epoch, lead)
            if late_save:  # After its row: a kill in between redoes the epoch.
                ckpt.save(trainer.state, force=True, metrics=summary,
                          position=trainer.source.position())
            if lead:
                metrics.console(epoch + 1, config.num_epochs, summary)
            if stop_early:
                summary = {**summary, **trainer.evaluate()}  # The model that was kept.
                break
            if epoch + 1 < config.num_epochs and stop.requested():
                save_and_stop(step, sums)
        if not summary:  # Already trained: report the final model.
            summary = trainer.evaluate()
        ckpt.save(trainer.state, force=True)
        if lead:
            metrics.console_end(workdir, summary, time.perf_counter() - began)
    finally:
        trainer.source.close()
        ckpt.close()
        writer.close()
    return summary
