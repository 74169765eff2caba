"""The one train step and the one eval step, pure functions of (state, batch).

Every input path and both compilations use them: a source turns its data arguments
into a batch inside the compiled function (``data.sources``: the device input gathers
its rows from the split it holds), and ``parallel`` compiles the composition with
``jax.jit`` over a mesh or ``jax.pmap``. A batch is this device's rows of the global
batch under pmap and the whole (sharded) batch under jit. Metrics come back as sums
(loss_sum, correct, count, nonfinite) that add up over steps and devices.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from resnet_flax.data import augment, canvas, datasets, mixing
from resnet_flax.train import parallel
from resnet_flax.train.state import TrainState


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """The static (compile-time) settings of a step. Past the dataset's classes and
    statistics and the pmap axis, each field is the config field of its name
    (``step_config`` copies them by name; their meaning is in ``config.py``)."""

    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0
    random_flip: bool = False
    label_smoothing: float = 0.0
    loss: str = "softmax"
    bce_target_threshold: float = 0.0
    ema_decay: float = 0.0
    ema_every_steps: int = 1
    tta_flip: bool = False
    cutout_size: int = 0
    random_erasing: float = 0.0
    random_erasing_scale: tuple[float, float] = (0.02, 0.4)
    random_erasing_ratio: tuple[float, float] = (0.3, 1 / 0.3)
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    input_size: int = 0
    input_channels: int = 0
    grad_accum_steps: int = 1
    # > 0: the train batch's images are crop boxes on canvases (``data/canvas.py``), each
    # resized to this size first.
    canvas_crop: int = 0
    # The pmap axis (set by parallel.PmapMode): each device computes its rows of the batch
    # and reduces gradients, BatchNorm statistics and metric sums over the axis.
    axis_name: str | None = None

    def model_input_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return model_input_shape(image_shape, self.input_size, self.input_channels)

    @property
    def mixes(self) -> bool:
        return bool(self.mixup_alpha or self.cutmix_alpha)


def model_input_shape(image_shape: tuple[int, int, int], input_size: int = 0,
                      input_channels: int = 0) -> tuple[int, int, int]:
    """The (H, W, C) the model sees for input images of ``image_shape`` (``input_size``:
    resized to a square; ``input_channels``: a grey channel repeated)."""
    h, w, c = image_shape
    return (input_size or h, input_size or w, input_channels or c)


_DERIVED = ("num_classes", "mean", "std", "axis_name", "canvas_crop")  # Not config fields.


def step_config(config, axis_name: str | None = None) -> StepConfig:
    """A run's step settings: its dataset's classes and statistics, and every other field
    copied from the config field of the same name."""
    spec = datasets.get(config.dataset, config.data_dir or None)
    imagenet = config.normalization == "imagenet"
    named = {f.name: _static(config[f.name]) for f in dataclasses.fields(StepConfig)
             if f.name not in _DERIVED}
    return StepConfig(num_classes=spec.num_classes,
                      mean=datasets.IMAGENET_MEAN if imagenet else spec.mean,
                      std=datasets.IMAGENET_STD if imagenet else spec.std,
                      axis_name=axis_name,
                      canvas_crop=config.crop_size if canvas.run_side(config) else 0, **named)


def _static(value):
    """A config value as a hashable one (a config's tuples may arrive as lists)."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, num_classes: int,
                  label_smoothing: float = 0.0) -> jnp.ndarray:
    """Per-example softmax cross-entropy against (optionally smoothed) one-hot labels."""
    targets = jax.nn.one_hot(labels, num_classes)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def train_step(state: TrainState, batch: tuple, key: jax.Array,
               cfg: StepConfig) -> tuple[TrainState, Any]:
    """One SGD step on ``batch`` = (uint8 images, labels); randomness is
    ``fold_in(key, step)``. Under pmap each device gathers the whole batch first and
    augments it all, as jit does, then keeps its rows.

    ``key`` is a typed PRNG key or its raw ``jax.random.key_data`` (which, unlike a
    typed key, can be assembled from host data in a multi-process run).
    """
    images, batch_labels = parallel.all_rows(batch, cfg.axis_name)
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    aug_key, dropout_key = jax.random.split(jax.random.fold_in(key, state.step))
    x, mix = augmented_batch(aug_key, images, cfg)
    targets = mixing.mixed_targets(batch_labels, mix, cfg.num_classes, cfg.label_smoothing)
    lam, partners = mixing.partners(batch_labels, mix)
    x, targets, batch_labels, partners = parallel.this_device_rows(
        (x, targets, batch_labels, partners), cfg.axis_name)

    loss, logits, batch_stats, grads = loss_and_grads(state, x, targets, dropout_key, cfg)
    grads = parallel.mean_over(grads, cfg.axis_name)
    # Equal already where BatchNorm syncs; per-device (ghost) statistics are averaged.
    batch_stats = parallel.mean_over(batch_stats, cfg.axis_name)
    state = state.apply_gradients(grads, batch_stats)
    if cfg.ema_decay:
        state = state.update_ema(cfg.ema_decay, cfg.ema_every_steps)
    n = batch_labels.shape[0]
    metrics = {
        "loss_sum": loss * n,
        "correct": jnp.sum(mixing.correct(logits, batch_labels, partners, lam)
                           ).astype(jnp.float32),
        "count": jnp.float32(n),
        "nonfinite": _nonfinite(loss, grads, batch_stats),
    }
    return state, parallel.sum_over(metrics, cfg.axis_name)


# What a non-finite step (``nonfinite`` > 0) or state most often means, for its error.
DIVERGED_CAUSES = ("Likely causes: too high a config.lr for this batch size, or no warm-up "
                   "(config.warmup_epochs).")


def _nonfinite(loss, grads, batch_stats) -> jnp.ndarray:
    """1.0 if the loss, the gradients or the new BatchNorm statistics hold a NaN or inf:
    activations can overflow the statistics while the loss stays finite."""
    bad = ~jnp.isfinite(loss)
    # Leaf by leaf: a norm of large but finite gradients could overflow to inf itself.
    for leaf in jax.tree.leaves((grads, batch_stats)):
        bad |= ~jnp.all(jnp.isfinite(leaf))
    return bad.astype(jnp.float32)


def training_loss(logits: jnp.ndarray, targets: jnp.ndarray, cfg: StepConfig) -> jnp.ndarray:
    """The batch's mean loss against (mixed, smoothed) target distributions: softmax
    cross-entropy, or timm's ``BinaryCrossEntropy`` (a sigmoid per class, the mean over
    examples and classes; targets above ``bce_target_threshold`` made 1, the rest 0)."""
    if cfg.loss == "softmax":
        return optax.softmax_cross_entropy(logits, targets).mean()
    if cfg.bce_target_threshold:
        targets = (targets > cfg.bce_target_threshold).astype(targets.dtype)
    return optax.sigmoid_binary_cross_entropy(logits, targets).mean()


def loss_and_grads(state: TrainState, x: jnp.ndarray, targets: jnp.ndarray,
                   dropout_key: jax.Array, cfg: StepConfig):
    """(mean loss, logits, new BatchNorm statistics, gradient) of one batch.

    With ``cfg.grad_accum_steps`` = k > 1 the batch runs as k micro-batches one after another
    (``lax.scan``: activations of one micro-batch at a time) and the gradient is their
    mean: for a model without BatchNorm exactly the whole batch's. BatchNorm normalises
    each micro-batch by its own statistics and updates the running ones k times, as
    accumulation in torch does. Micro-batch i holds examples i, i + k, ..., so that each
    one is spread over all the devices the batch is sharded over.
    """
    def one(batch_stats, x, targets, key):
        def loss_fn(params):
            logits, new_vars = state.apply_fn(
                {"params": params, "batch_stats": batch_stats}, x, train=True,
                mutable=["batch_stats"], rngs={"dropout": key})
            loss = training_loss(logits, targets, cfg)
            return loss, (logits, new_vars["batch_stats"])

        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return loss, logits, stats, grads

    accum_steps = cfg.grad_accum_steps
    if accum_steps == 1:
        return one(state.batch_stats, x, targets, dropout_key)

    def micro(a):  # (B, ...) -> (k, B / k, ...), micro-batch i = examples i, i + k, ...
        return a.reshape(a.shape[0] // accum_steps, accum_steps, *a.shape[1:]).swapaxes(0, 1)

    def body(carry, inputs):
        stats, grad_sum, loss_sum = carry
        xi, ti, i = inputs
        loss, logits, stats, grads = one(stats, xi, ti, jax.random.fold_in(dropout_key, i))
        return (stats, jax.tree.map(jnp.add, grad_sum, grads), loss_sum + loss), logits

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    (stats, grad_sum, loss_sum), logits = jax.lax.scan(
        body, (state.batch_stats, zeros, jnp.float32(0)),
        (micro(x), micro(targets), jnp.arange(accum_steps)))
    logits = logits.swapaxes(0, 1).reshape(x.shape[0], -1)  # Back to the batch's order.
    grads = jax.tree.map(lambda g: g / accum_steps, grad_sum)
    return loss_sum / accum_steps, logits, stats, grads


def augmented_batch(key: jax.Array, images: jnp.ndarray,
                    cfg: StepConfig) -> tuple[jnp.ndarray, mixing.Mix | None]:
    """Crop boxes resized (a raw store's, ``canvas_crop``), resize for the model
    (``to_model_input``), crop and flip (uint8), normalise, then
    Cutout, Random Erasing and Mixup/CutMix, which work on normalised images. Each
    draws from its own stream of ``key``. The ``Mix`` is None when nothing is mixed."""
    if cfg.canvas_crop:
        images = canvas.resized(images, cfg.canvas_crop)
    x = augment.to_model_input(images, cfg.input_size, cfg.input_channels)
    x = augment.augment(key, x, cfg.crop_padding, cfg.random_flip)
    x = augment.normalize(x, cfg.mean, cfg.std)
    # fold_in, not a wider split: crop and flip keep the streams they always had.
    cutout_key, erase_key, mix_key = (jax.random.fold_in(key, i) for i in (1, 2, 3))
    x = augment.cutout(cutout_key, x, cfg.cutout_size)
    x = augment.random_erasing(erase_key, x, cfg.random_erasing, cfg.random_erasing_scale,
                               cfg.random_erasing_ratio)
    if not cfg.mixes:
        return x, None
    return mixing.mix(mix_key, x, cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mix_prob)


def predict(state: TrainState, images: jnp.ndarray, cfg: StepConfig,
            ema: bool = False) -> jnp.ndarray:
    """Logits of ``images`` in eval mode (the EMA's with ``ema``; averaged with the mirror
    images' with ``cfg.tta_flip``)."""
    return inference(state.apply_fn, state.variables(ema), images, cfg)


def inference(apply_fn, variables: dict, images: jnp.ndarray, cfg: StepConfig) -> jnp.ndarray:
    """``predict`` of a model's ``apply_fn`` and ``variables``: the images (as the input
    gives them) resized for the model, normalised, and with ``cfg.tta_flip`` mirrored too."""
    x = augment.to_model_input(images, cfg.input_size, cfg.input_channels)
    x = augment.normalize(x, cfg.mean, cfg.std)
    logits = apply_fn(variables, x, train=False)
    if cfg.tta_flip:
        logits = (logits + apply_fn(variables, augment.hflip(x), train=False)) / 2
    return logits


@functools.cache
def forward(cfg: StepConfig, ema: bool = False, mesh=None):
    """The compiled inference pass of ``--mode eval``, ``predict`` and export:
    ``(state, images) -> float32 logits`` (``predict``), on one device or, given a
    ``mesh``, on a batch sharded over it with the logits replicated. One per settings."""
    def logits(state, images):
        return predict(state, images, cfg, ema).astype(jnp.float32)

    if mesh is None:
        return jax.jit(logits)
    return jax.jit(logits, out_shardings=parallel.replicated(mesh))


def eval_step(state: TrainState, batch: tuple, cfg: StepConfig, ema: bool = False) -> Any:
    """Masked sums over ``batch`` = (images, labels, mask); padded entries (mask 0) count
    for nothing. ``ema=True`` evaluates the state's moving average of the weights."""
    images, batch_labels, mask = batch
    logits = predict(state, images, cfg, ema)
    loss = cross_entropy(logits, batch_labels, cfg.num_classes)
    return parallel.sum_over({
        "loss_sum": jnp.sum(loss * mask),
        "correct": jnp.sum((jnp.argmax(logits, -1) == batch_labels) * mask),
        "count": jnp.sum(mask),
    }, cfg.axis_name)
