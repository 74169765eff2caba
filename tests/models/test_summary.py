"""Model summary: per-layer shapes, parameters and MACs, against published figures."""

from __future__ import annotations

import pytest

from resnet_flax import models
from resnet_flax.cli import summary as summary_cli
from resnet_flax.models import layer_table


def test_resnet50_at_224_is_4_09_gmacs():
    s = layer_table.summarize("resnet50", (224, 224, 3))
    assert s.params == 25_557_032  # torchvision's count: its running statistics are buffers.
    assert s.non_trainable == 53_120  # Keras' ResNet50's non-trainable count: the BN statistics.
    assert s.total == s.params + s.non_trainable
    assert s.macs == 4_089_184_256
    assert layer_table.format_count(s.macs) == "4.09 G"


def test_resnet20_is_about_41_mmacs():
    s = layer_table.summarize("resnet20")  # natural input: 32x32x3
    assert s.params == 269_722
    assert s.macs == 40_551_040 and round(s.macs / 1e6) == 41


# torchvision's published "GFLOPS" (multiply-accumulates) at 224x224.
@pytest.mark.parametrize("name, gmacs", [
    ("resnet18", 1.81), ("resnet34", 3.66), ("resnext50_32x4d", 4.23),
    ("wide_resnet50_2", 11.40), ("resnet101", 7.80),
])
def test_imagenet_macs_match_torchvision(name, gmacs):
    assert round(layer_table.summarize(name).macs / 1e9, 2) == gmacs


def test_rows_count_conv_and_dense_macs_from_shapes():
    rows = {r.path: r for r in layer_table.summarize("resnet50").rows}
    stem = rows["conv1"]
    assert stem.kind == "Conv" and stem.output_shape == (112, 112, 64)
    assert stem.params == 7 * 7 * 3 * 64 and stem.macs == 112 * 112 * 64 * 7 * 7 * 3
    assert rows["bn1"].params == 128 and rows["bn1"].macs == 0
    assert rows["layer2_0/downsample/conv"].output_shape == (28, 28, 512)
    assert rows["fc"].macs == 2048 * 1000 and rows["fc"].params == 2048 * 1000 + 1000


def test_grouped_conv_macs_divide_by_groups():
    rows = {r.path: r for r in layer_table.summarize("resnext50_32x4d").rows}
    conv2 = rows["layer1_0/conv2"]  # 128 -> 128 channels in 32 groups, 56x56
    assert conv2.macs == 56 * 56 * 128 * 3 * 3 * (128 // 32)


def test_summary_of_a_module_and_overrides():
    s = layer_table.summarize(models.create("resnet20", width_multiplier=2), (32, 32, 3))
    assert s.params == layer_table.summarize("resnet20", width_multiplier=2).params
    with pytest.raises(ValueError, match="input_shape"):
        layer_table.summarize(models.create("resnet20"))


def test_cli_prints_table_and_totals(capsys):
    summary_cli.main(["--model", "resnet20"])
    out = capsys.readouterr().out
    assert "layer3_2/conv2 (Conv)" in out and "(8, 8, 64)" in out
    # Trainable (torchvision's count), the BN statistics apart, and both (Keras'): 19
    # BatchNorms (7 of 16 channels, 6 of 32, 6 of 64), a mean and a variance per channel.
    totals = out.splitlines()[-4:]
    assert totals == ["Trainable params: 269,722 (269.72 K)",
                      "Non-trainable (BN statistics): 1,376 (1.38 K)",
                      "Total params (Keras' count_params: both): 271,098 (271.10 K)",
                      "Total MACs: 40,551,040 (40.55 M)"]
    assert 2 * (7 * 16 + 6 * 32 + 6 * 64) == 1_376
    summary_cli.main(["--model", "resnet50", "--image-size", "224"])
    assert "Total MACs: 4,089,184,256 (4.09 G)" in capsys.readouterr().out
