r"""Train-step throughput of a model, as one JSON line.

    python -m resnet_flax.benchmark --model resnet20 --batch 128 --steps 50
    python -m resnet_flax.benchmark --model resnet18 --stem cifar --batch 128 --steps 20 \
        --data on-device --loop dispatch

Times ``train.steps.train_step`` (the optimizer of ``recipe``: SGD, momentum 0.9,
weight decay 5e-4; cross-entropy) as ``run.train_loop.Trainer`` compiles it: the state, data
and key replicated over a 1-D ``data`` mesh, each batch split over it, the state
donated. Reports images/s (median and 10th/90th percentile over the timed steps
after warm-up), step time, compile time, memory, FLOPs per step (XLA's cost
analysis of the step; where the backend has none, as on XLA:GPU, the convolutions
and dot products of its jaxpr, ``flops_source`` says which), achieved GFLOP/s and
MFU against the device's peak (CPU: a float32 matmul measured here and now; GPU: the
datasheet dense bf16 peak).

``--data synthetic`` trains on one fixed batch (no augmentation): the
compute-bound figure. ``--data on-device`` keeps a CIFAR-sized split of random
uint8 images on the device and gathers, crops, flips and normalises each batch
inside the step, with a fresh permutation every epoch: the training loop's
figure. ``--loop dispatch`` runs ``--steps-per-dispatch`` steps per call in training's
own compiled loop (``train.chunks``, ``config.steps_per_dispatch``) instead of one call
per step.

``--parallelism pmap`` compiles the same step as training's ``parallelism=pmap``
(``parallel.PmapMode``: gradients, BatchNorm statistics and metrics reduced over
the device axis by the step itself).

On a CPU the process is split into ``--devices`` virtual XLA devices (default:
``cli.host_devices.default_count()``: 1 with Eigen convolutions, the default, else
one per core) before JAX starts. ``--cpu-convs xla-default`` keeps jaxlib's YNNPACK ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import platform
import resource
import statistics
import time

# Dense bf16 tensor-core peaks from the vendors' datasheets, FLOP/s, by device_kind prefix.
GPU_PEAK_BF16 = {
    "NVIDIA H200": 989e12,
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100": 989e12,  # SXM
    "NVIDIA A100": 312e12,
    "NVIDIA L40S": 362e12,
    "NVIDIA L4": 121e12,
    "NVIDIA A10G": 70e12,
    "NVIDIA A10": 125e12,
    "Tesla V100": 125e12,  # fp16; V100 has no bf16
    "Tesla T4": 65e12,  # fp16
}


def cpu_matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul FLOP/s of this CPU: numpy's BLAS or XLA's dot, all cores."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    flop = 2.0 * size**3
    best = 0.0
    x = jax.device_put(a, jax.devices("cpu")[0])
    dot = jax.jit(jnp.dot)
    for fn in (lambda: a @ a, lambda: dot(x, x).block_until_ready()):
        fn()
        for _ in range(repeats):
            tic = time.perf_counter()
            fn()
            best = max(best, flop / (time.perf_counter() - tic))
    return best


def device_peak(device) -> tuple[float | None, str]:
    """(peak FLOP/s, where the figure comes from) for ``device``."""
    if device.platform == "cpu":
        return cpu_matmul_peak(), "measured float32 matmul (numpy/XLA, all cores)"
    kind = getattr(device, "device_kind", "")
    for prefix in sorted(GPU_PEAK_BF16, key=len, reverse=True):
        if kind.startswith(prefix):
            return GPU_PEAK_BF16[prefix], f"datasheet dense bf16 ({prefix})"
    return None, f"unknown peak for {kind!r}"


def _percentile(sorted_values, q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _memory(compiled, devices) -> dict:
    out = {}
    try:
        ma = compiled.memory_analysis()
        if ma is not None:
            for k in ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
                      "temp_size_in_bytes"):
                out[k.replace("_size_in_bytes", "_mb")] = getattr(ma, k) / 2**20
    except Exception:  # noqa: BLE001 - not every backend implements it.
        pass
    try:
        stats = devices[0].memory_stats()
        if stats and "peak_bytes_in_use" in stats:
            out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
    except Exception:  # noqa: BLE001
        pass
    out["host_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def recipe(model: str, seed: int, model_options: dict, weight_decay: float = 5e-4):
    """The config a benchmark trains ``model`` with: SGD with lr 0.1 (constant), momentum
    0.9 and ``weight_decay`` (5e-4: the PyTorch reference's; He et al.'s is 1e-4)."""
    from resnet_flax.config import default_config

    config = default_config()
    config.model, config.seed, config.optimizer = model, seed, "sgd"
    config.lr, config.momentum, config.weight_decay = 0.1, 0.9, weight_decay
    config.model_options.update(model_options)
    return config


def _step(state, images, labels, indices, key, cfg):
    """The train step on the examples ``indices`` names, as the device input runs it."""
    from resnet_flax.data import sources
    from resnet_flax.train import steps

    return steps.train_step(state, sources.gather((images, labels, indices)), key, cfg)


@dataclasses.dataclass
class Prepared:
    """A model's state, its data on the host, and the step config that trains it."""

    devices: list
    shape: tuple[int, int, int]
    classes: int
    size: int  # Examples in the data: one batch (synthetic) or a dataset.
    cfg: object  # steps.StepConfig
    model: object
    state: object
    images: object
    labels: object
    per_call: int  # Train steps per compiled call (steps_per_dispatch, else 1).


def _devices(args) -> list:
    import jax

    devices = jax.devices()
    if args.devices:
        if args.devices > len(devices):
            raise SystemExit(f"--devices {args.devices}: only {len(devices)} available")
        devices = devices[: args.devices]
    if args.batch % len(devices):
        raise SystemExit(f"--batch {args.batch} is not divisible by the {len(devices)} "
                         "devices")
    return devices


def _model_shape(args) -> tuple[tuple[int, int, int], int, dict]:
    """(input shape, classes, model overrides) of the model ``args`` name."""
    from resnet_flax import models

    spec = models.spec(args.model)
    overrides = {"dtype": args.dtype}
    h, w, c = spec.input_shape
    classes = spec.num_classes
    if args.stem:
        overrides["stem"] = args.stem
        if args.stem == "cifar" and h > 64:
            h, w, c, classes = 32, 32, 3, 10
    if args.image_size:
        h = w = args.image_size
    if args.input_channels:
        c = args.input_channels
    if args.width_multiplier:
        overrides["width_multiplier"] = args.width_multiplier
    return (h, w, c), args.num_classes or classes, overrides


def prepare(args, say) -> Prepared:
    """The model, its state and random uint8 data of ``args``' sizes, on the host."""
    import numpy as np

    from resnet_flax.run.assemble import build
    from resnet_flax.train import steps

    devices = _devices(args)
    (h, w, c), classes, overrides = _model_shape(args)
    n = len(devices)
    say(f"building {args.model} ({h}x{w}x{c}, {classes} classes, batch {args.batch}, "
        f"{args.dtype}, {n} device{'s' if n > 1 else ''}) ...")
    rng = np.random.default_rng(args.seed)
    if args.data == "synthetic":
        size = args.batch
        cfg = steps.StepConfig(num_classes=classes, mean=(0.5,) * c, std=(0.25,) * c)
    else:
        size = args.dataset_size or (50_000 if h <= 64 else 32 * args.batch)
        cfg = steps.StepConfig(num_classes=classes, mean=(0.5,) * c, std=(0.25,) * c,
                               crop_padding=4 if h <= 64 else 0, random_flip=True)
    if size < args.batch:
        raise SystemExit(f"--dataset-size {size} is smaller than --batch {args.batch}")
    images = rng.integers(0, 256, (size, h, w, c), dtype=np.uint8)
    labels = rng.integers(0, classes, (size,), dtype=np.int32)
    built = build(recipe(args.model, args.seed, overrides), classes, (h, w, c))
    per_call = args.steps_per_dispatch if args.loop == "dispatch" else 1
    return Prepared(devices, (h, w, c), classes, size, cfg, built.model, built.state,
                    images, labels, per_call)


def batch_rows(args, p: Prepared, call: int):
    """(per_call, batch) example indices for the ``call``-th call."""
    import numpy as np

    from resnet_flax.data import pipeline

    if args.data == "synthetic":
        return np.tile(np.arange(args.batch, dtype=np.int32), (p.per_call, 1))
    per_epoch = pipeline.steps_per_epoch(p.size, args.batch)
    return np.stack([pipeline.train_batches(args.seed, s // per_epoch, p.size,
                                            args.batch)[s % per_epoch]
                     for s in range(call * p.per_call, (call + 1) * p.per_call)])


@dataclasses.dataclass
class Compiled:
    """The step compiled for the mesh, with its placed inputs and what XLA said of it."""

    call: object  # (state, images, labels, rows, key) -> (state, metrics)
    program: object  # What XLA compiled (its memory analysis).
    put_rows: object
    state: object
    data: tuple
    key: object
    compile_s: float
    flops: float | None
    flops_source: str | None
    mode: object


def compile_step(args, p: Prepared, say) -> Compiled:
    """The train step as training compiles it (jit or pmap; one step a call, or many)."""
    import jax
    import jax.numpy as jnp

    from resnet_flax.speed import flops as flops_of
    from resnet_flax.train import parallel

    key = jax.random.key(args.seed + 1)
    plain_step_flops = functools.partial(
        flops_of.step_flops, functools.partial(_step, cfg=p.cfg), p.state,
        jax.ShapeDtypeStruct(p.images.shape, p.images.dtype),
        jax.ShapeDtypeStruct(p.labels.shape, p.labels.dtype),
        jax.ShapeDtypeStruct((args.batch,), jnp.int32), key)
    mode = parallel.mode(args.parallelism, parallel.make_mesh(p.devices))
    # The step's model: pmap's BatchNorm and dropout span its axis (the FLOP count traces
    # the plain model outside pmap).
    step_state = p.state.replace(apply_fn=mode.step_model(p.model, True).apply)
    step_cfg = dataclasses.replace(p.cfg, axis_name=mode.axis_name)
    fn = mode.train_step(functools.partial(_step, cfg=step_cfg))
    put_rows = lambda rows: mode.put_rows(rows[0])  # noqa: E731
    state, data = mode.put_state(step_state), mode.put_replicated((p.images, p.labels))
    key = mode.put_replicated(jax.random.key_data(key))
    lower, fixed = fn.lower, None
    if args.loop == "dispatch":
        lower, fixed, put_rows = _dispatch_loop(
            mode, step_cfg, p.per_call,
            jax.eval_shape(fn, state, *data, put_rows(batch_rows(args, p, 0)), key)[1])
    say(f"compiling the train step"
        f"{' (' + str(p.per_call) + ' per dispatch)' if p.per_call > 1 else ''} ...")
    tic = time.perf_counter()
    lowered = lower(state, *data, put_rows(batch_rows(args, p, 0)), key)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - tic
    call = compiled
    if fixed is not None:  # The chunk's running sums and length, on the step's signature.
        def call(state, images, labels, columns, key):
            return compiled(state, fixed[0], (images, labels, columns), fixed[1], key)
    # One jit step: its own lowering; a scan of steps or pmap's per-device program: one
    # plain step traced apart.
    one_step = args.parallelism == "jit" and args.loop == "step"
    flops, source = plain_step_flops(lowered=lowered if one_step else None)
    return Compiled(call, compiled, put_rows, state, data, key, compile_s, flops, source,
                    mode)


def _dispatch_loop(mode, cfg, width: int, metric_shapes):
    """(lower, (zeros, length), put_rows): training's many-steps loop (``train.chunks``,
    as ``Trainer`` compiles ``steps_per_dispatch`` steps) lowered on the one step's
    arguments, ``rows`` (width, batch) a step a row."""
    import jax
    import numpy as np

    from resnet_flax.data import sources
    from resnet_flax.train import chunks, steps

    chunk = mode.train_step(chunks.chunk_of(steps.train_step, sources.gather, cfg))
    zeros = mode.put_replicated(jax.tree.map(lambda s: np.zeros((), s.dtype), metric_shapes))
    length = mode.put_replicated(np.int32(width))

    def lower(state, images, labels, columns, key):
        return chunk.lower(state, zeros, (images, labels, columns), length, key)

    return lower, (zeros, length), lambda rows: mode.put_rows(np.ascontiguousarray(rows.T))


def time_steps(args, p: Prepared, c: Compiled, say) -> tuple[list[float], float, float]:
    """(seconds per step of each timed call, warm-up seconds, the last loss)."""
    import jax

    calls_warm = -(-args.warmup // p.per_call)
    calls_timed = -(-args.steps // p.per_call)
    warm = calls_warm * p.per_call
    say(f"compiled in {c.compile_s:.1f} s; {warm} warm-up step{'s' if warm != 1 else ''}, "
        f"then timing {calls_timed * p.per_call} steps ...")
    times, warmup_s = [], 0.0
    tic = time.perf_counter()
    for call in range(calls_warm + calls_timed):
        rows = c.put_rows(batch_rows(args, p, call))
        t0 = time.perf_counter()
        c.state, metrics = c.call(c.state, *c.data, rows, c.key)
        jax.block_until_ready((c.state, metrics))
        if call >= calls_warm:
            times.append((time.perf_counter() - t0) / p.per_call)
        elif call == calls_warm - 1:
            warmup_s = time.perf_counter() - tic
    metrics = c.mode.canonical(metrics)
    return times, warmup_s, float(metrics["loss_sum"]) / float(metrics["count"])


def run(args: argparse.Namespace, progress=None) -> dict:
    """Times the step ``args`` describe (see the module docstring); ``progress(message)``
    is told each stage as it starts (the command prints them on stderr)."""
    say = progress or (lambda message: None)
    p = prepare(args, say)
    c = compile_step(args, p, say)
    times, warmup_s, loss = time_steps(args, p, c, say)
    if p.devices[0].platform == "cpu":
        say("measuring this CPU's float32 matmul peak (for the MFU) ...")
    result = _result(args, p, c, times, warmup_s, loss)
    if args.profile:
        from resnet_flax.speed import profiling

        def one_call():
            c.state, out = c.call(c.state, *c.data, c.put_rows(batch_rows(args, p, 0)), c.key)
            return out

        say(f"tracing {args.profile_steps * p.per_call} more steps with jax.profiler into "
            f"{args.profile} ...")
        trace = profiling.trace(one_call, args.profile_steps, args.profile)
        result["profile"] = profiling.top_ops(trace, args.profile_steps * p.per_call)
    return result


def _result(args, p: Prepared, c: Compiled, times, warmup_s: float, loss: float) -> dict:
    import flax
    import jax
    import jaxlib
    import numpy as np
    import optax

    ips = sorted(args.batch / t for t in times)
    step_s = statistics.median(times)
    peak, peak_source = device_peak(p.devices[0])
    achieved = c.flops / step_s if c.flops else None
    dev = p.devices[0]
    return {
        "model": args.model + (f"[stem={args.stem}]" if args.stem else ""),
        "params": int(sum(x.size for x in jax.tree.leaves(p.state.params))),
        "input_shape": list(p.shape), "batch": args.batch,
        "steps": len(times) * p.per_call, "dtype": args.dtype,
        "parallelism": args.parallelism, "devices": len(p.devices), "data": args.data,
        "loop": args.loop, "images_per_sec": statistics.median(ips),
        "images_per_sec_p10": _percentile(ips, 0.1),
        "images_per_sec_p90": _percentile(ips, 0.9),
        "images_per_sec_min": ips[0], "images_per_sec_max": ips[-1],
        "step_ms": 1e3 * step_s, "compile_s": c.compile_s, "warmup_s": warmup_s,
        "flops_per_step": c.flops, "flops_source": c.flops_source,
        "gflops_per_sec": achieved / 1e9 if achieved else None,
        "peak_gflops_per_sec": peak / 1e9 if peak else None, "peak_source": peak_source,
        "mfu": achieved / peak if achieved and peak else None,
        "memory": _memory(c.program, p.devices),
        "final_loss": loss,
        "device": {"platform": dev.platform, "kind": getattr(dev, "device_kind", ""),
                   "count": len(p.devices), "cpu_count": os.cpu_count(),
                   "machine": platform.machine()},
        "compile_cache": jax.config.jax_compilation_cache_dir,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "versions": {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                     "flax": flax.__version__, "optax": optax.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
    }
