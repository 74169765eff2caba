"""Fine-tuning: a run's first weights from torchvision/timm files or another run.

``config.init_from`` names pretrained weights by name (``resnet50.a1_in1k``, a hub id:
``resnet_flax.pretrained``), a ``.safetensors``/``.pth`` state dict (converted by
``models.torch_weights.from_torch``; ``.pth`` read with ``weights_only``) or another run's
workdir (its latest checkpoint; its EMA when it kept one, the weights its own
evaluation reported). ``config.init_head`` decides the classifier: ``new`` keeps the
fresh one of this run (the dataset's classes), ``keep`` the source's (the classes
must agree). Everything else must match this run's model leaf for leaf. Only a new
run starts this way; a resumed one continues from its own checkpoints.
"""

from __future__ import annotations

import pathlib

from flax import traverse_util

from resnet_flax.config import ConfigError, model_overrides
from resnet_flax.workdir import integrity

HEAD = "fc"


def _fail(config, why: str) -> None:
    raise ConfigError(f"config.init_from={config.init_from!r}: {why}")


def names_weights(init_from: str) -> bool:
    """Whether ``init_from`` is pretrained weights by name (or hub id), not a local path:
    nothing there, no weights-file suffix, and at most an ``owner/`` that is no folder."""
    from resnet_flax.pretrained import FILE_SUFFIXES

    path = pathlib.Path(init_from).expanduser()
    if path.exists() or path.suffix in FILE_SUFFIXES or \
            init_from.startswith((".", "/", "~")):
        return False
    owner, slash, rest = init_from.partition("/")
    return not slash or ("/" not in rest and not pathlib.Path(owner).exists())


def check_source(config) -> pathlib.Path:
    """The local path of ``config.init_from`` (weights by name fetched into the hub cache);
    ``ConfigError`` when there is none (checked before data loads)."""
    if not names_weights(config.init_from):
        path = pathlib.Path(config.init_from).expanduser()
        if not path.exists():
            _fail(config, "does not exist (give pretrained weights by name, e.g. "
                          "resnet50.tv2_in1k, a .safetensors or .pth file, or a run's workdir)")
        return path
    from resnet_flax import pretrained

    try:
        weights, path = pretrained.resolve(config.init_from, model=config.model)
    except pretrained.PretrainedError as e:
        _fail(config, f"no such file or folder; {e}" if "unknown weights" in str(e) else str(e))
    if weights.model != config.model:
        _fail(config, f"those are {weights.model} weights; this config trains {config.model} "
                      f"(--config.model={weights.model})")
    return path


def source_variables(config) -> dict:
    """``{"params", "batch_stats"}`` of ``config.init_from``."""
    path = check_source(config)
    if path.is_dir():
        return _from_workdir(config, path)
    from resnet_flax.models import torch_weights

    try:
        return torch_weights.from_torch(config.model, path, **model_overrides(config))
    except Exception as e:  # torch's and safetensors' own errors for a bad file.
        # Only the first sentence: torch goes on to suggest weights_only=False, which
        # would run whatever code the file holds.
        why = str(e).split(". ")[0].splitlines()[0][:300] if str(e) else "no message"
        _fail(config, f"not a {config.model} state dict ({type(e).__name__}: {why})")


def _from_workdir(config, path: pathlib.Path) -> dict:
    from resnet_flax.run import evaluate
    from resnet_flax.workdir import resume_guard

    source = resume_guard.load(path)
    if source.model != config.model:
        _fail(config, f"that run trained {source.model!r}, this config {config.model!r}")
    state = evaluate.restore(source, path, "latest")
    return state.variables(ema=source.ema_decay > 0)


def initial_variables(config, fresh: dict) -> dict:
    """The source's variables, checked against this run's ``fresh`` ones (same paths and
    shapes), with the head chosen by ``config.init_head``."""
    source = {k: dict(v) for k, v in source_variables(config).items()}
    problem = integrity.nonfinite(integrity.host_leaves(source))
    if problem:  # Training from them would only report a non-finite loss, late.
        _fail(config, f"holds {problem}: not weights to start from")
    if config.init_head == "new":
        source["params"][HEAD] = fresh["params"][HEAD]
    flat_source = traverse_util.flatten_dict(source, sep="/")
    flat_fresh = traverse_util.flatten_dict(fresh, sep="/")
    problems = [f"{k} missing" for k in flat_fresh if k not in flat_source]
    problems += [f"{k} unexpected" for k in flat_source if k not in flat_fresh]
    problems += [f"{k} has shape {flat_source[k].shape}, the model needs {v.shape}"
                 for k, v in flat_fresh.items()
                 if k in flat_source and flat_source[k].shape != v.shape]
    if problems:
        hint = (" (init_head='new' gives a fresh classifier for this dataset's classes)"
                if any(k.startswith(f"params/{HEAD}/") for k in problems) else "")
        _fail(config, f"does not fit this run's {config.model}: {'; '.join(problems[:4])}"
                      f"{' ...' if len(problems) > 4 else ''}{hint}")
    return traverse_util.unflatten_dict(
        {k: flat_source[k].astype(v.dtype) for k, v in flat_fresh.items()}, sep="/")
