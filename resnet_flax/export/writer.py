"""``export``: write the formats, check each against the model, describe them."""

from __future__ import annotations

import functools
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import jax
import numpy as np

from resnet_flax.export import FORMATS, TOLERANCE, hub_folder, stablehlo
from resnet_flax.export.source import Exportable, ExportError, example_images


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))


def onnxruntime_logits(path: pathlib.Path, images: np.ndarray) -> np.ndarray:
    """The ONNX model's logits, computed by onnxruntime in a process of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/images.npy", images)
        result = subprocess.run(
            [sys.executable, "-m", "resnet_flax.export.run_onnx", str(path),
             f"{tmp}/images.npy", f"{tmp}/logits.npy"], capture_output=True, text=True)
        if result.returncode:
            raise ExportError(f"onnxruntime could not run {path.name}: "
                              f"{(result.stderr.strip().splitlines() or ['no output'])[-1]}")
        return np.load(f"{tmp}/logits.npy")


def _write_onnx(exportable: Exportable, folder: pathlib.Path) -> pathlib.Path:
    from resnet_flax.export import onnx_graph

    model = onnx_graph.convert(functools.partial(exportable.logits, exportable.variables),
                               exportable.input_shape)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _check(exportable: Exportable, written: dict[str, pathlib.Path]) -> dict[str, float]:
    """Each format's largest relative difference from the model on random images."""
    from resnet_flax import pretrained

    images = example_images(exportable)
    expected = np.asarray(jax.jit(exportable.logits)(exportable.variables, images))
    found = {}
    if "stablehlo" in written:
        found["stablehlo"] = np.asarray(stablehlo.load(written["stablehlo"]).call(images))
    if "onnx" in written:
        found["onnx"] = onnxruntime_logits(written["onnx"], images)
    if "weights" in written:
        try:
            _, variables = pretrained.load(str(written["weights"]))
        except pretrained.PretrainedError as e:
            raise ExportError(f"the weights folder does not read back: {e}") from None
        found["weights"] = np.asarray(jax.jit(exportable.logits)(variables, images))
    differences = {f: _relative(v, expected) for f, v in found.items()}
    worse = {f: d for f, d in differences.items() if not d <= TOLERANCE}
    if worse:
        raise ExportError(f"the exported {', '.join(worse)} differ from the model by "
                          f"{max(worse.values()):.1e} relative (at most {TOLERANCE:.0e})")
    return differences


def _onnx_opset() -> int:
    from resnet_flax.export import onnx_graph

    return onnx_graph.OPSET


def _describe(exportable: Exportable, written: dict, differences: dict) -> dict:
    return {
        "model": exportable.model_name, "model_options": exportable.model_options,
        "source": exportable.source,
        "input": {"shape": [None, *exportable.input_shape], "dtype": "uint8",
                  "layout": "NHWC", "values": "0..255"},
        "inside": "scaled to [0, 1], less mean, over std (per channel); the run's resize, "
                  "channel repeat and flip TTA where it had them",
        "mean": list(exportable.mean), "std": list(exportable.std), "view": exportable.view,
        "output": "float32 logits, [batch, classes]",
        "class_names": list(exportable.class_names),
        "files": {f: p.name for f, p in written.items()},
        "stablehlo_platforms": list(stablehlo.PLATFORMS) if "stablehlo" in written else None,
        "onnx_opset": _onnx_opset() if "onnx" in written else None,
        "largest_relative_difference": differences, "jax": jax.__version__,
    }


def export(exportable: Exportable, output: str, formats=FORMATS,
           overwrite: bool = False) -> dict[str, pathlib.Path]:
    """Writes ``formats`` of ``exportable`` (``from_workdir`` / ``from_weights``) into the
    new folder ``output`` (replaced with ``overwrite``); returns {format: path}."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"--formats {','.join(formats)}: each must be one of {FORMATS}")
    out = pathlib.Path(output).expanduser()
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists: choose a new --output, or --overwrite")
    partial = out.with_name(out.name + ".partial")  # Whole or not at all.
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    writers = {"stablehlo": stablehlo.write, "onnx": _write_onnx, "weights": hub_folder.write}
    try:
        written = {f: writers[f](exportable, partial) for f in FORMATS if f in formats}
        differences = _check(exportable, written)
        (partial / "export.json").write_text(json.dumps(
            _describe(exportable, written, differences), indent=2, default=str) + "\n")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return {f: out / p.name for f, p in written.items()}


def export_model(output: str, *, workdir: str | None = None, weights: str | None = None,
                 checkpoint: str = "latest", model: str | None = None, formats=FORMATS,
                 overwrite: bool = False) -> dict[str, pathlib.Path]:
    """Exports a run's checkpoint (``workdir``, ``checkpoint``) or pretrained ``weights``
    (a name, a hub id, a folder, or a file with ``model``) into ``output``."""
    from resnet_flax.export.source import from_weights, from_workdir

    if (workdir is None) == (weights is None):
        raise ExportError("export one source: a workdir or weights")
    exportable = from_weights(weights, model) if weights else from_workdir(workdir, checkpoint)
    return export(exportable, output, formats, overwrite)
