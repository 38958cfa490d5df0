"""Serving graphs and exports (TFLite, ONNX, SavedModel), their metadata, runtimes and the GPU check.

Submodules import their heavy dependencies (Keras / TensorFlow, tf2onnx, LiteRT, ONNX Runtime) themselves;
importing this package imports none of them (the GPU check must run in a process without TensorFlow).
"""

from __future__ import annotations

import importlib

__all__ = ["build_serving_model"]


def __getattr__(name):
    if name == "build_serving_model":
        return importlib.import_module("lmkzoo.export.serving").build_serving_model
    raise AttributeError(f"module 'lmkzoo.export' has no attribute {name!r}")
