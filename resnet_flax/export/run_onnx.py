"""Runs an exported ``model.onnx`` with onnxruntime in a process of its own:

    python -m resnet_flax.export.run_onnx model.onnx images.npy logits.npy

onnxruntime and jaxlib in one process can corrupt each other's memory (a crash in the
session's graph optimisation, seen here), so the export's check runs it apart, as a
user's server would. Imports nothing of JAX or this project."""

import sys

import numpy as np


def main(model: str, images: str, logits: str) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    np.save(logits, session.run(["logits"], {"images": np.load(images)})[0])


if __name__ == "__main__":
    main(*sys.argv[1:4])
