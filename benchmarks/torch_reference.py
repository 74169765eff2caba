"""The PyTorch reference step: the same CIFAR ResNets and the same SGD train step.

    python benchmarks/torch_reference.py --model resnet20 --batch 128 --steps 50

prints one JSON line shaped like ``python -m resnet_flax.benchmark``'s. Models:

* ``resnet20`` (and any ``resnet<6n+2>``): He et al. 2015 sec. 4.2, option-A
  shortcuts (stride-2 subsample, zero-pad channels evenly on both sides), as in
  akamaster's widely used ``resnet_cifar``; equals ``models.create('resnet20')``.
* ``resnet18``: kuangliu's CIFAR ResNet-18 (3x3 stem, no max-pool, 1x1 projection
  shortcuts), equals ``models.create('resnet18', num_classes=10, stem='cifar')``.
* ``torchvision.<name>`` (``torchvision.resnet50``): torchvision's ImageNet model,
  1000 classes at 224x224 (needs torchvision; the GPU suite's anchor).

``--device cuda --dtype bfloat16`` runs it on a GPU under ``torch.autocast``
(bfloat16 compute, float32 weights, the usual AMP recipe) with
``cudnn.benchmark`` on, synchronising after each step.

``--compile`` runs the model under ``torch.compile`` (Inductor; its compilation falls in
the warm-up steps): the stronger anchor beside eager.

The step is eager PyTorch with ``channels_last`` tensors (torch's fastest CPU
layout for convs): forward, cross-entropy, backward, SGD with momentum 0.9 and
weight decay 5e-4, on a fixed batch already on the device (the compute-bound
figure, like the JAX benchmark's ``--data synthetic``). Test-only dependency:
``torch==2.13.0``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class OptionA(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad the new channels evenly."""

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x):
        lo = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, lo, self.extra - lo))


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1, shortcut="B"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = OptionA(planes - in_planes)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stem, stages of basic blocks (stride 2 from the second), avg-pool, linear."""

    def __init__(self, stage_sizes, widths, stem_width, shortcut, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        layers, in_planes = [], stem_width
        for i, (n, w) in enumerate(zip(stage_sizes, widths)):
            for j in range(n):
                layers.append(BasicBlock(in_planes, w, 2 if i > 0 and j == 0 else 1, shortcut))
                in_planes = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def create(name: str, num_classes: int = 10) -> nn.Module:
    """``resnet<6n+2>`` (option A, 16/32/64), ``resnet18`` (kuangliu's CIFAR net) or
    ``torchvision.<name>`` (ImageNet, 1000 classes)."""
    if name.startswith("torchvision."):
        import torchvision

        return getattr(torchvision.models, name.removeprefix("torchvision."))(num_classes=1000)
    if name == "resnet18":
        return CifarResNet((2, 2, 2, 2), (64, 128, 256, 512), 64, "B", num_classes)
    depth = int(name.removeprefix("resnet"))
    if (depth - 2) % 6:
        raise ValueError(f"{name}: CIFAR ResNets have depth 6n + 2")
    n = (depth - 2) // 6
    return CifarResNet((n, n, n), (16, 32, 64), 16, "A", num_classes)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_step(model, lr=0.1, momentum=0.9, weight_decay=5e-4):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def run(model_name: str, batch: int, steps: int, warmup: int, channels_last: bool = True,
        threads: int | None = None, device: str = "cpu", dtype: str = "float32",
        image_size: int | None = None, compiled: bool = False) -> dict:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    imagenet = model_name.startswith("torchvision.")
    size, classes = (224, 1000) if imagenet else (32, 10)
    size = image_size or size
    model = create(model_name, classes).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=fmt)
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=fmt)
    y = torch.randint(0, classes, (batch,), device=device)
    # torch.compile (Inductor) of the model: forward and backward fused, the optimizer
    # eager. The warm-up steps include its compilation.
    step = make_step(torch.compile(model) if compiled else model)
    if dtype != "float32":
        autocast = torch.autocast(device.split(":")[0], dtype=getattr(torch, dtype))
        step = autocast(step)
    sync = torch.cuda.synchronize if device.startswith("cuda") else lambda: None

    def timed():
        tic = time.perf_counter()
        step(x, y)
        sync()
        return time.perf_counter() - tic

    warmup_s = sum(timed() for _ in range(warmup))
    times = [timed() for _ in range(steps)]
    ips = sorted(batch / t for t in times)
    q = lambda p: ips[min(len(ips) - 1, int(p * len(ips)))]  # noqa: E731
    return {
        "framework": "torch", "model": model_name, "batch": batch, "steps": steps,
        "dtype": dtype, "device": device, "input_shape": [size, size, 3],
        "layout": "channels_last" if channels_last else "nchw",
        "mode": "torch.compile" if compiled else "eager",
        "images_per_sec": statistics.median(ips),
        "images_per_sec_p10": q(0.1), "images_per_sec_p90": q(0.9),
        "step_ms": 1e3 * statistics.median(times), "warmup_s": warmup_s,
        "params": param_count(model), "threads": torch.get_num_threads(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device_peak_mb": (torch.cuda.max_memory_allocated() / 2**20
                           if device.startswith("cuda") else None),
        "device_kind": (torch.cuda.get_device_name() if device.startswith("cuda")
                        else platform.processor()),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--nchw", action="store_true", help="contiguous (NCHW) instead of NHWC")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="autocast compute dtype (weights stay float32)")
    p.add_argument("--image-size", type=int, default=None,
                   help="input height = width (default 224 for torchvision.*, else 32)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (Inductor), compiled in the warm-up steps")
    a = p.parse_args(argv)
    warmup = max(a.warmup, 2) if a.compile else a.warmup  # Forward, then backward, compile.
    print(json.dumps(run(a.model, a.batch, a.steps, warmup, not a.nchw, a.threads, a.device,
                         a.dtype, a.image_size, a.compile)), flush=True)


if __name__ == "__main__":
    main()
