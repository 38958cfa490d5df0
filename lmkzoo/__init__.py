"""lmkzoo: face-landmark models for Keras 3 / TensorFlow, five published families behind one API.

>>> import lmkzoo
>>> lmkzoo.list_models("pipnet*")            # zoo.yaml entries
>>> lm = lmkzoo.load()                        # the embedded default model, offline
>>> faces = lm.predict("photo.jpg")           # list[FaceLandmarks], points in image pixels
>>> lmkzoo.train("pipnet_lite", data="landmark_folder/lfw_teacher68", out_dir="runs/lite")
>>> report = lmkzoo.evaluate("runs/lite/final.keras", "wflw:test")
>>> image = lmkzoo.read_image("photo.jpg")    # RGB uint8 (H, W, 3)

``import lmkzoo`` imports neither TensorFlow nor Keras: light modules (``schemes``, ``geometry``, ``registry``,
``errors``) load with it, and the other names (``load``, ``train``, ``evaluate``, ``read_image``, ``metrics``,
``losses``, ...) import their module, and Keras where they need it, on first use.
"""

from __future__ import annotations

import importlib
import os

# lmkzoo's data pipeline and exports are TensorFlow; Keras must use the TF backend unless the user chose
# another one explicitly (the models themselves are keras.ops and run on JAX too).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from lmkzoo import errors, geometry, schemes  # noqa: E402
from lmkzoo.registry import get_spec, list_models  # noqa: E402

__version__ = "0.1.0"

_LAZY = {
    "metrics": ("lmkzoo.metrics", None),
    "losses": ("lmkzoo.losses", None),
    "hub": ("lmkzoo.hub", None),
    "visualize": ("lmkzoo.visualize", None),
    "load": ("lmkzoo.inference.loader", "load"),
    "Landmarker": ("lmkzoo.inference.landmarker", "Landmarker"),
    "FaceLandmarks": ("lmkzoo.inference.landmarker", "FaceLandmarks"),
    "train": ("lmkzoo.training.train", "train"),
    "evaluate": ("lmkzoo.inference.evaluate", "evaluate"),
    "read_image": ("lmkzoo.image_io", "read_image"),
    "sample_image": ("lmkzoo.samples", "sample_image"),
}

__all__ = ["errors", "geometry", "schemes", "get_spec", "list_models", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lmkzoo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
