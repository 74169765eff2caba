"""Reference ResNets in plain ``torch.nn``: torchvision's layout, plus timm's extras.

A copy of torchvision's ``resnet.py`` (``BasicBlock``, ``Bottleneck`` with
``groups``/``width_per_group``, ``ResNet``), so state-dict names and arithmetic
are torchvision's; torchvision itself has no CPU wheel here. Three timm
options keep timm's names: ``deep_stem`` (``conv1`` = 3x3 conv/BN/ReLU stack,
resnet50d), ``avg_down`` (``downsample`` = AvgPool, conv, BN) and ``se``
(``se.fc1``/``se.fc2`` 1x1 convs with bias, seresnet50).
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_planes, out_planes, stride=1, groups=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                     groups=groups, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class SEModule(nn.Module):
    """timm's ``SEModule`` (``rd_ratio=1/16``, ``rd_divisor=8``)."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        v = channels / reduction
        hidden = max(8, int(v + 4) // 8 * 8)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 se=False):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SEModule(planes) if se else None
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 se=False):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = SEModule(planes * self.expansion) if se else None
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, groups=1, width_per_group=64,
                 deep_stem=False, stem_width=32, avg_down=False, se=False):
        super().__init__()
        self.inplanes = 64
        self.groups = groups
        self.base_width = width_per_group
        self.avg_down = avg_down
        self.se = se
        if deep_stem:
            self.conv1 = nn.Sequential(
                nn.Conv2d(3, stem_width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
                nn.Conv2d(stem_width, stem_width, 3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
                nn.Conv2d(stem_width, self.inplanes, 3, stride=1, padding=1, bias=False))
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3,
                                   bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        out = planes * block.expansion
        if stride != 1 or self.inplanes != out:
            if self.avg_down:
                pool = (nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
                        if stride != 1 else nn.Identity())
                downsample = nn.Sequential(pool, conv1x1(self.inplanes, out),
                                           nn.BatchNorm2d(out))
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, out, stride),
                                           nn.BatchNorm2d(out))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups,
                        self.base_width, self.se)]
        self.inplanes = out
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups,
                                base_width=self.base_width, se=self.se))
        return nn.Sequential(*layers)

    def forward_features(self, x):
        """Dict of ``stem``, ``stage1``..``stage4``, ``logits`` (NCHW tensors)."""
        feats = {}
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats["stem"] = x
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            feats[f"stage{i + 1}"] = x
        feats["logits"] = self.fc(torch.flatten(self.avgpool(x), 1))
        return feats

    def forward(self, x):
        return self.forward_features(x)["logits"]


# The torchvision / timm constructors (names as registered in resnet_flax.models).
REFERENCES = {
    "resnet18": lambda: ResNet(BasicBlock, [2, 2, 2, 2]),
    "resnet34": lambda: ResNet(BasicBlock, [3, 4, 6, 3]),
    "resnet50": lambda: ResNet(Bottleneck, [3, 4, 6, 3]),
    "resnet101": lambda: ResNet(Bottleneck, [3, 4, 23, 3]),
    "resnet152": lambda: ResNet(Bottleneck, [3, 8, 36, 3]),
    "resnext50_32x4d": lambda: ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4),
    "resnext101_32x8d": lambda: ResNet(Bottleneck, [3, 4, 23, 3], groups=32,
                                       width_per_group=8),
    "resnext101_64x4d": lambda: ResNet(Bottleneck, [3, 4, 23, 3], groups=64,
                                       width_per_group=4),
    "wide_resnet50_2": lambda: ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=128),
    "wide_resnet101_2": lambda: ResNet(Bottleneck, [3, 4, 23, 3], width_per_group=128),
    "resnet50d": lambda: ResNet(Bottleneck, [3, 4, 6, 3], deep_stem=True, avg_down=True),
    "se_resnet50": lambda: ResNet(Bottleneck, [3, 4, 6, 3], se=True),
}


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN affine and running statistics (so eval-mode BN is no identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return model.eval()
