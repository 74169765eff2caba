"""The config schema: every field a recipe in ``configs/`` may set, with its default, and
the checks of values that need nothing but the schema (ranges, probabilities, tuples).

Recipes start from ``default_config()`` and change what they need; the CLI's
``--config.key=value`` overrides then apply on a locked copy, so a mistyped key
fails instead of being silently added. Names with a fixed set of choices (models,
datasets, optimizers, ...) are checked by the part that owns them; ``run.validate``
composes every check. This module imports nothing of the package.
"""

from __future__ import annotations

import math

import ml_collections


class ConfigError(ValueError):
    """A config no run could use; the message names the field, the value and valid ones."""


# Names a user meets for a field elsewhere (`learning_rate` in the console, metrics.jsonl
# and plots; other libraries' names), so an override by that name can point to the field.
FIELD_ALIASES = {"learning_rate": "lr", "epochs": "num_epochs", "batch": "batch_size",
                 "wd": "weight_decay", "label_smooth": "label_smoothing"}
CROP_RESIZES = ("auto", "device", "host")
LOSSES = ("softmax", "bce")  # config.loss: see train/steps.py.
FOLDER_CHANGED = ("error", "warn")  # config.folder_changed (data/folder_changes.py).


def field_names(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every field as a dotted path (``model_options.dtype``), branches included."""
    out = []
    for key, value in config.items():
        out.append(prefix + key)
        if isinstance(value, ml_collections.ConfigDict):
            out += field_names(value, f"{prefix}{key}.")
    return out


def default_config() -> ml_collections.ConfigDict:
    """All fields with neutral defaults (a recipe sets dataset, model and optimizer)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    for add in (_data_fields, _model_fields, _optimisation_fields, _run_fields):
        add(c)
    return c


def _data_fields(c: ml_collections.ConfigDict) -> None:
    """The dataset, the input path, crops and augmentations."""
    # Data: a TFDS dataset.
    c.dataset = "fashion_mnist"
    c.data_dir = ""  # TFDS data dir; "" means TFDS's default ($TFDS_DATA_DIR).
    c.allow_download = True  # Only tried when the download host answers.
    c.train_subset = 0  # > 0: train on this many examples (a fixed draw); 0: all of them.
    # A folder:PATH dataset whose images changed since its build: "error" stops the run
    # (the build is yesterday's data), "warn" says so and reads the build as it is.
    c.folder_changed = "error"
    # > 0: evaluate on this many test examples (a fixed draw; short ablations whose every
    # epoch's evaluation would cost as much as its training); 0: all of them.
    c.test_subset = 0
    # The input path (resnet_flax/data/sources.py): "device" holds each split whole in
    # device memory (small datasets: fastest); "stream" reads the array_record files batch
    # by batch with Grain (data larger than device memory, images of any size).
    c.input = "device"
    c.input_workers = 4  # stream: Grain worker processes reading and cropping; 0: none.
    # device: train steps run per dispatch, as one compiled loop (the host's per-step work
    # bounds small nets on a GPU); any value trains bit for bit alike.
    c.steps_per_dispatch = 1
    # stream: "inception": Inception's random-resized crop to crop_size (training) and the
    # centre crop of the image resized to crop_size / eval_crop_fraction (evaluation).
    c.crop = "none"
    c.crop_size = 224
    c.crop_scale = (0.08, 1.0)  # Share of the image area the training crop covers.
    c.crop_ratio = (3 / 4, 4 / 3)  # Its aspect ratio range (log-uniform).
    c.eval_crop_fraction = 0.875  # 224 of 256.
    # > 0: evaluation's crop size where training's differs (torchvision's V2 trains at 176
    # and evaluates at 224, after resizing to 232: FixRes's train-test resolution split).
    c.eval_crop_size = 0
    # Where a pre-resized raw store's training crops are resized: "device" (in the step;
    # the host only copies each box), "host" (PIL), "auto": the device unless it is a CPU.
    c.crop_resize = "auto"
    c.crop_padding = 0  # Pad-and-random-crop margin in pixels; 0 disables.
    c.random_flip = False  # Random horizontal flips.
    # stream: an augmentation policy on each training crop, on the host (data/policies):
    # "ta_wide" or "ra" (torchvision's TrivialAugmentWide, RandAugment), a timm string
    # such as "rand-m9-mstd0.5-inc1", or "" for none.
    c.auto_augment = ""
    # Its affine ops' resampling: torchvision's "nearest" | "bilinear" (its reference
    # scripts' default); timm's "random" (bilinear or bicubic per op) | "bilinear" | ...
    c.auto_augment_interpolation = "bilinear"
    # > 1: repeated augmentation (Hoffer et al. 2020): each image this many times in a row
    # of the epoch's order, the copies on different devices, the epoch no longer (timm's
    # aug_repeats, torchvision's ra_reps; 3 in both); 0 or 1: off.
    c.repeated_augment = 0
    c.input_size = 0  # > 0: resize images (bilinear, on the device) to this square size.
    c.input_channels = 0  # 3: repeat a grey channel to RGB (for ImageNet weights).
    c.normalization = "dataset"  # Or "imagenet": the statistics pretrained weights expect.
    # After normalising (so an erased pixel is the dataset mean, or noise):
    c.cutout_size = 0  # Cutout (DeVries & Taylor 2017): side of the square; 16 on CIFAR-10.
    c.random_erasing = 0.0  # Random Erasing (Zhong et al. 2020) probability; 0.5 in the paper.
    c.random_erasing_scale = (0.02, 0.4)  # Erased share of the image area (the paper's).
    c.random_erasing_ratio = (0.3, 1 / 0.3)  # Aspect ratio range, sampled log-uniformly.
    c.mixup_alpha = 0.0  # Mixup (Zhang et al. 2018): lam ~ Beta(a, a); 1.0 on CIFAR.
    c.cutmix_alpha = 0.0  # CutMix (Yun et al. 2019): lam ~ Beta(a, a); 1.0 in the paper.
    c.mix_prob = 1.0  # Share of batches mixed (CutMix's cutmix_prob, 0.5 on CIFAR).


def _model_fields(c: ml_collections.ConfigDict) -> None:
    """The model and its options."""
    # Model: a name from resnet_flax.models.names(); options left unset (None) keep
    # the family's own default and are otherwise passed to models.create. Each option
    # is declared, with its values, by the part that owns it (models/options.py
    # gathers them; docs/models.md's table is made from them): here only its type.
    c.model = "fashion_mnist_resnet"
    opt = ml_collections.config_dict.placeholder
    c.model_options = ml_collections.ConfigDict({
        name: opt(kind) for name, kind in (
            ("dtype", str), ("shortcut", str), ("plain", bool), ("zero_init_residual", bool),
            ("dropout_rate", float), ("conv_init", str), ("bn_momentum", float),
            ("bn_epsilon", float), ("bn_convention", str), ("bn_batch", int), ("preact", bool),
            ("stochastic_depth", float), ("width_multiplier", float), ("se_reduction", int),
            ("block_dropout", float), ("stem", str), ("stem_width", int), ("groups", int),
            ("base_width", int), ("conv_bias", bool), ("activation", str), ("norm", str),
            ("norm_groups", int))})


def _optimisation_fields(c: ml_collections.ConfigDict) -> None:
    """Batch, optimizer, schedule."""
    # Optimisation.
    c.batch_size = 128  # Global batch, split over all devices.
    c.eval_batch_size = 1000
    c.num_epochs = 10
    # Any optax optimizer by name (train.optim.optax_optimizers(): "rmsprop", "lion", ...);
    # sgd, adam, adamw, lars and lamb also read the fields below (train.optim.CONFIG_FIELDS).
    c.optimizer = "sgd"
    # Further keywords of optax.<optimizer> (rmsprop's decay, adamw's nesterov, ...). From
    # the command line as one dict: --config.optimizer_options="{'decay': 0.95}".
    c.optimizer_options = ml_collections.ConfigDict()
    c.lr = 0.1  # Peak learning rate for a global batch of batch_size.
    c.momentum = 0.9  # sgd/lars momentum.
    c.nesterov = False
    c.b1 = 0.9  # adam/adamw/lamb.
    c.b2 = 0.999
    c.eps = 1e-8
    # Optax's own weight_decay where the optimizer has one (decoupled for adamw/lamb/lion,
    # in the trust ratio for lars), else L2 added to the gradient (sgd/adam/rmsprop/...).
    c.weight_decay = 0.0
    c.trust_coefficient = 0.001  # LARS: the layer's lr is this x |w| / |g + wd w|.
    c.grad_clip_norm = 0.0  # > 0: clip the whole gradient to this global norm.
    # > 1: each step's batch runs as this many micro-batches one after another and their
    # averaged gradient makes one update (same batch, step count and schedule; less memory).
    c.grad_accum_steps = 1
    c.decay_bn_and_bias = True  # False: no weight decay on BN scales/offsets and biases.
    c.label_smoothing = 0.0
    # "softmax" cross-entropy, or "bce": timm's BinaryCrossEntropy, a sigmoid per class
    # (ResNet strikes back); evaluation's test_loss stays the softmax's, as timm's is.
    c.loss = "softmax"
    c.bce_target_threshold = 0.0  # bce: targets above it made 1, the rest 0 (RSB: 0.2).
    c.schedule = "constant"  # One of train.optim.SCHEDULES.
    c.warmup_epochs = 0.0  # Linear warmup (warmup_cosine, constant, piecewise).
    c.warmup_start_factor = 0.0  # Its first lr, a share of the peak (torchvision V2: 0.01).
    # > 0: the peak lr is lr * batch_size / lr_base_batch (linear scaling rule, e.g. 256).
    c.lr_base_batch = 0
    c.onecycle_pct_start = 0.3  # onecycle: share of the run spent rising (torch's 0.3).
    c.onecycle_div_factor = 25.0  # onecycle: start at peak / this.
    c.onecycle_final_div_factor = 1e4  # onecycle: end at the start value / this.
    c.lr_boundaries_epochs = (100, 150)  # piecewise: multiply by lr_decay_factor here.
    c.lr_decay_factor = 0.1


def _run_fields(c: ml_collections.ConfigDict) -> None:
    """Fine-tuning, parallelism, callbacks, evaluation and bookkeeping."""
    # Fine-tuning (resnet_flax/run/finetune.py): start from other weights.
    # Weights by name (resnet18.tv_in1k: resnet_flax.pretrained), a torchvision/timm
    # .safetensors or .pth file, or a run's workdir.
    c.init_from = ""
    c.init_head = "new"  # "new": a fresh classifier; "keep": the source's (same classes).
    c.freeze = ""  # Parts kept fixed, BN statistics included: e.g. "stem,stage1".
    c.backbone_lr_multiplier = 1.0  # The backbone's lr is lr times this; the head's is lr.

    # Data parallelism (resnet_flax/train/parallel.py): "jit" (sharded over a mesh) or "pmap";
    # both compute the same steps. sync_batch_stats=False: per-device BatchNorm statistics.
    c.parallelism = "jit"
    c.sync_batch_stats = True

    # Keras-style callbacks, decided after each epoch's evaluation (resnet_flax/train/callbacks.py).
    c.reduce_lr_on_plateau = ml_collections.ConfigDict({
        "enabled": False, "monitor": "test_loss", "factor": 0.1, "patience": 10,
        "min_delta": 1e-4, "cooldown": 0, "min_lr": 0.0})
    c.early_stopping = ml_collections.ConfigDict({
        "enabled": False, "monitor": "test_loss", "patience": 10, "min_delta": 0.0,
        "restore_best": True})  # The best epoch's weights are the run's final ones.

    # Evaluation.
    c.ema_decay = 0.0  # > 0: evaluate an exponential moving average of the weights.
    c.ema_every_steps = 1  # Update it every this many steps (torchvision V2: 32).
    c.tta_flip = False  # Average each test image's logits with its mirror's.

    # Bookkeeping.
    c.checkpoint_every_steps = 500  # Also at the end of training.
    c.keep_checkpoints = 3
    # "" (off) or one of train.callbacks.BEST_METRICS: each epoch's checkpoint carries its
    # metrics and the best epoch's is kept beside the latest ones (--checkpoint best).
    c.best_metric = ""
    c.progress_bar = True
    # Resume a workdir with a config that trains differently (resume_guard refuses it).
    c.allow_config_change = False


def check_values(config: ml_collections.ConfigDict) -> None:
    """Raises ``ConfigError`` on a number, range or tuple no run could use."""
    def fail(field, why):
        raise ConfigError(f"config.{field}={config[field]!r} {why}")

    for field in ("batch_size", "eval_batch_size", "num_epochs", "checkpoint_every_steps",
                  "keep_checkpoints"):
        if config[field] <= 0:
            fail(field, "must be positive")
    for field in ("lr", "momentum", "weight_decay", "warmup_epochs", "lr_decay_factor", "eps",
                  "b1", "b2", "trust_coefficient", "grad_clip_norm"):
        if not math.isfinite(config[field]) or config[field] < 0:
            fail(field, "must be a finite number >= 0")
    if config.grad_accum_steps < 1 or config.batch_size % config.grad_accum_steps:
        fail("grad_accum_steps", f"must be >= 1 and divide batch_size={config.batch_size}")
    if config.lr_base_batch < 0:
        fail("lr_base_batch", "must be >= 0 (0: lr is used as given)")
    if not 0.0 < config.onecycle_pct_start < 1.0:
        fail("onecycle_pct_start", "must be in (0, 1)")
    for field in ("onecycle_div_factor", "onecycle_final_div_factor"):
        if not math.isfinite(config[field]) or config[field] <= 0:
            fail(field, "must be a finite number > 0")
    if not 0.0 <= config.label_smoothing < 1.0:
        fail("label_smoothing", "must be in [0, 1)")
    if not 0.0 <= config.ema_decay < 1.0:
        fail("ema_decay", "must be in [0, 1) (0 disables the EMA; 0.999 is typical)")
    if config.ema_every_steps < 1:
        fail("ema_every_steps", "must be >= 1")
    if config.loss not in LOSSES:
        fail("loss", f"is not one of {LOSSES}")
    for field in ("bce_target_threshold", "warmup_start_factor"):
        if not 0.0 <= config[field] < 1.0:
            fail(field, "must be in [0, 1)")
    if config.crop_padding < 0:
        fail("crop_padding", "must be >= 0")
    if config.train_subset < 0:
        fail("train_subset", "must be >= 0 (0: the whole training split)")
    if config.folder_changed not in FOLDER_CHANGED:
        fail("folder_changed", f"must be one of {FOLDER_CHANGED}")
    if config.test_subset < 0:
        fail("test_subset", "must be >= 0 (0: the whole test split)")
    _check_augmentation(config, fail)
    _check_input(config, fail)
    _check_finetuning(config, fail)
    _check_callbacks(config)
    boundaries = list(config.lr_boundaries_epochs)
    if boundaries != sorted(boundaries):
        raise ConfigError(f"config.lr_boundaries_epochs={tuple(boundaries)} must be increasing")


def _check_augmentation(config: ml_collections.ConfigDict, fail) -> None:
    """Cutout, Random Erasing, Mixup and CutMix settings."""
    if config.cutout_size < 0:
        fail("cutout_size", "must be >= 0 (0 disables Cutout)")
    for field in ("random_erasing", "mix_prob"):
        if not 0.0 <= config[field] <= 1.0:
            fail(field, "must be a probability in [0, 1]")
    for field in ("mixup_alpha", "cutmix_alpha"):
        if not math.isfinite(config[field]) or config[field] < 0:
            fail(field, "must be a finite number >= 0 (0 disables it)")
    low, high = config.random_erasing_scale
    if not 0.0 < low <= high < 1.0:
        fail("random_erasing_scale", "must be (low, high) with 0 < low <= high < 1")
    low, high = config.random_erasing_ratio
    if not 0.0 < low <= high:
        fail("random_erasing_ratio", "must be (low, high) with 0 < low <= high")


def _check_input(config: ml_collections.ConfigDict, fail) -> None:
    """The stream input's workers and crops."""
    if config.input_workers < 0:
        fail("input_workers", "must be >= 0 (0: read in the training process)")
    if config.steps_per_dispatch < 1:
        fail("steps_per_dispatch", "must be >= 1")
    if config.steps_per_dispatch > 1 and config.input != "device":
        fail("steps_per_dispatch", f"needs config.input='device' (input={config.input!r} "
             "hands the step one host batch at a time); give 1")
    if config.crop_size <= 0:
        fail("crop_size", "must be positive")
    low, high = config.crop_scale
    if not 0.0 < low <= high <= 1.0:
        fail("crop_scale", "must be (low, high) with 0 < low <= high <= 1")
    low, high = config.crop_ratio
    if not 0.0 < low <= high:
        fail("crop_ratio", "must be (low, high) with 0 < low <= high")
    if not 0.0 < config.eval_crop_fraction <= 1.0:
        fail("eval_crop_fraction", "must be in (0, 1]")
    if config.crop_resize not in CROP_RESIZES:
        fail("crop_resize", f"must be one of {CROP_RESIZES}")


def _check_finetuning(config: ml_collections.ConfigDict, fail) -> None:
    """Input resizing and fine-tuning fields (the freeze names are checked with the model)."""
    if config.input_size < 0:
        fail("input_size", "must be >= 0 (0: the dataset's own size)")
    if config.input_channels not in (0, 1, 3):
        fail("input_channels", "must be 0 (the dataset's own), 1 or 3")
    if config.init_head not in ("new", "keep"):
        fail("init_head", "is not one of ('new', 'keep')")
    # Whether init_from exists is checked where it is read (finetune.check_source): only
    # a new run reads it, so a fine-tuned run resumes and evaluates without it.
    multiplier = config.backbone_lr_multiplier
    if not math.isfinite(multiplier) or multiplier < 0:
        fail("backbone_lr_multiplier", "must be a finite number >= 0")


def _check_callbacks(config: ml_collections.ConfigDict) -> None:
    """The callbacks' numbers (their monitors are ``train.checks``')."""
    plateau, early = config.reduce_lr_on_plateau, config.early_stopping

    def fail(name, field, why):
        raise ConfigError(f"config.{name}.{field}={config[name][field]!r} {why}")

    for name, group in (("reduce_lr_on_plateau", plateau), ("early_stopping", early)):
        if group.patience < 0:
            fail(name, "patience", "must be >= 0")
        if not math.isfinite(group.min_delta) or group.min_delta < 0:
            fail(name, "min_delta", "must be a finite number >= 0")
    if not 0.0 < plateau.factor < 1.0:
        fail("reduce_lr_on_plateau", "factor", "must be in (0, 1)")
    if plateau.cooldown < 0 or not plateau.min_lr >= 0:
        fail("reduce_lr_on_plateau", "cooldown" if plateau.cooldown < 0 else "min_lr",
             "must be >= 0")


def ranking_metric(config: ml_collections.ConfigDict) -> str:
    """What checkpoints rank epochs by: ``best_metric``, or early stopping's monitor when it
    must restore the best weights ("": no ranking)."""
    early = config.early_stopping
    return config.best_metric or (early.monitor if early.enabled and early.restore_best else "")


def freeze_parts(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """``config.freeze`` as a tuple of part names (``stem``, ``stage1``, ...)."""
    return tuple(part.strip() for part in config.freeze.split(",") if part.strip())


def model_overrides(config: ml_collections.ConfigDict) -> dict:
    """The ``model_options`` a recipe or the command line actually set."""
    return {k: v for k, v in config.model_options.items() if v is not None}
