"""The GPU suite's rows (``benchmarks/gpu_suite.py``), in priority order."""

from __future__ import annotations

import dataclasses

BENCH = ["-m", "resnet_flax.benchmark", "--no-compile-cache"]
TRAIN_FLAGS = ["--config.allow_download=False", "--config.progress_bar=False"]
SMOKE_BENCH = ["--batch", "4", "--steps", "2", "--warmup", "1"]
SMOKE_TRAIN = ["--config.num_epochs=1", "--config.batch_size=8", "--config.eval_batch_size=8",
               "--config.checkpoint_every_steps=4", "--config.model_options.width_multiplier=0.25"]
R50_ANCHOR = ("NVIDIA's PyTorch ResNet-50 AMP: ~2,500 img/s on one A100; MLPerf-class "
              "systems: ~7,000 img/s per H100")


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    kind: str  # "bench" | "train" | "profile" | "input"
    what: str
    args: tuple[str, ...]  # After the interpreter.
    smoke_args: tuple[str, ...] = ()  # Appended with --smoke.
    torch_model: str | None = None  # benchmarks/torch_reference.py's name for the anchor.
    anchor: str = ""
    target: str = ""


def _bench(name, model, batch, torch_model, anchor="", target="", stem=None, size=None,
           parallelism="jit"):
    stem_args = ("--stem", stem) if stem else ()
    return Row(name, "bench", f"{model}{' (' + stem + ' stem)' if stem else ''}, bfloat16, "
               f"synthetic data, {parallelism}: train step",
               (*BENCH, "--model", model, *stem_args, "--dtype", "bfloat16", "--batch",
                str(batch), "--steps", "30", "--warmup", "5", "--parallelism", parallelism),
               (*SMOKE_BENCH, *(("--image-size", str(size)) if size else ())),
               torch_model, anchor, target)


# In priority order: a --budget that runs out leaves the least needed rows for a second call.
ROWS = (
    _bench("resnet50", "resnet50", 256, "torchvision.resnet50", R50_ANCHOR,
           ">= 7,200 img/s on one H100 (>= 8,000 on an H200), >= 1.3x torch.compile", size=32),
    _bench("resnet50_pmap", "resnet50", 256, None, "the jit row above", size=32,
           parallelism="pmap"),
    Row("fm_fast", "train", "configs/fashion_mnist_fast.py, bfloat16, an epoch's 117 steps "
        "per dispatch: time to 94% test accuracy",
        ("-m", "resnet_flax.main", "--config", "configs/fashion_mnist_fast.py",
         "--config.model_options.dtype=bfloat16", "--config.steps_per_dispatch=117",
         *TRAIN_FLAGS), tuple(SMOKE_TRAIN),
        anchor="one step per dispatch: the fm_fast_per_step row; 2-core CPU, float32: 94% "
               "after 2,180 s of training (94.10% at 20 epochs)",
        target="<= 3 s of training to 94%"),
    Row("resnet50_jpeg", "input", "ResNet-50, bfloat16, batch 64, trained from ImageNet-like "
        "JPEGs that 12 worker processes read, decode and crop to 224 on the machine's cores, "
        "against the same step on a batch already on the device",
        ("benchmarks/input_speed.py", "--cores", "all", "--step", "resnet50", "--dtype",
         "bfloat16", "--batch", "64", "--step-batches", "4", "--workers", "12", "--rounds",
         "5", "--images", "256"),
        ("--step", "resnet18", "--size", "32", "--batch", "4", "--step-batches", "2",
         "--workers", "1", "--rounds", "1", "--images", "20"),
        anchor="NVIDIA's MLPerf v4.0 ResNet-50: ~7,950 real-JPEG img/s per H200 (DALI, "
               "decoding on the GPU)", target=">= 90% of the step alone"),
    Row("crop_resize", "bench", "a raw:256 store's crop boxes resized to 224 in the step "
        "(data/canvas.py), batch 256: what config.crop_resize=auto puts on a GPU",
        ("benchmarks/crop_resize.py", "--batch", "256"),
        ("--batch", "4", "--size", "32", "--shorter", "40", "--steps", "3", "--warmup", "1"),
        anchor="PIL's resize of the same boxes on one host core (in the JSON); the step's "
               "on one CPU core: ~700 img/s (BENCHMARKS.md#input-speed)"),
    Row("profile_resnet50", "profile", "ResNet-50 train step, bfloat16: top ops",
        (*BENCH, "--model", "resnet50", "--dtype", "bfloat16", "--batch", "256", "--steps",
         "10", "--warmup", "3", "--profile-steps", "3"), (*SMOKE_BENCH, "--image-size", "32")),
    Row("profile_fm_fast", "profile", "fashion_mnist_fast's step (width 0.5, bfloat16, "
        "on-device data, crops and flips): top ops",
        (*BENCH, "--model", "fashion_mnist_resnet", "--width-multiplier", "0.5", "--dtype",
         "bfloat16", "--batch", "512", "--data", "on-device", "--dataset-size", "60000",
         "--steps", "30", "--warmup", "5", "--profile-steps", "10"),
        (*SMOKE_BENCH, "--dataset-size", "16")),
    Row("fm_tutorial", "train", "configs/fashion_mnist.py (Adam, batch 64, 10 epochs, full "
        "width): final test accuracy and wall time",
        ("-m", "resnet_flax.main", "--config", "configs/fashion_mnist.py", *TRAIN_FLAGS),
        tuple(SMOKE_TRAIN), anchor="its half-width CPU variant: 92.22% in 6 epochs"),
    Row("fm_fast_per_step", "train", "configs/fashion_mnist_fast.py, bfloat16, one step "
        "per dispatch: time to 94% test accuracy",
        ("-m", "resnet_flax.main", "--config", "configs/fashion_mnist_fast.py",
         "--config.model_options.dtype=bfloat16", *TRAIN_FLAGS), tuple(SMOKE_TRAIN),
        anchor="94% after 9.0 s of training on one H200 (BENCHMARKS.md#gpu)"),
    _bench("resnet18", "resnet18", 256, "torchvision.resnet18", size=32),
    _bench("resnet34", "resnet34", 256, "torchvision.resnet34", size=32),
    _bench("resnet101", "resnet101", 256, "torchvision.resnet101", size=32),
    _bench("cifar_resnet20", "resnet20", 512, "resnet20"),
    _bench("cifar_resnet56", "resnet56", 512, "resnet56"),
    _bench("cifar_resnet18", "resnet18", 512, "resnet18", stem="cifar"),
)
