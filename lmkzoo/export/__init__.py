"""Serving graphs and exports (TFLite, ONNX, SavedModel)."""

from lmkzoo.export.serving import build_serving_model

__all__ = ["build_serving_model"]
