"""The codec contract: one object per family turns points into training targets and network outputs into points.

``encode`` is TensorFlow (it runs inside ``tf.data`` maps); ``decode`` (the layer's ``call``) is ``keras.ops``
only, so the very same code decodes in Keras inference, in training-time evaluation and inside the exported
TFLite / ONNX graphs. Codecs are Keras layers: their configuration (grid sizes, neighbour tables, ...)
travels inside the network's config and ``.keras`` files.

Decode returns a dict with at least ``landmarks`` ``(B, K, 2)`` in pixels of the network input (lmkzoo's
corner convention) and ``scores`` ``(B, K)``; families with uncertainty add ``covariance`` ``(B, K, 2, 2)``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from lmkzoo.errors import InvalidArgumentError

__all__ = ["LandmarkCodec", "one_hot_cells", "gather_cells", "first_max_cells", "check_covariance_scale"]


def check_covariance_scale(value) -> float:
    """A covariance calibration factor (codecs that decode a covariance multiply it by this, in decode only):
    a finite number > 0, fitted on a validation set so that the predicted ellipses hold the share of points a
    Gaussian's do (:func:`lmkzoo.metrics.uncertainty.fit_covariance_scale`)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        raise InvalidArgumentError(f"covariance_scale must be a finite number > 0; got {value!r}")
    return v


class LandmarkCodec(keras.layers.Layer):
    """Base class. Subclasses implement :meth:`encode` (tf) and :meth:`call` (decode, keras.ops)."""

    #: keys of the network output dict that decode reads
    output_keys: tuple[str, ...] = ()

    def __init__(self, num_points: int, input_size=(256, 256), **kwargs):
        super().__init__(**kwargs)
        if int(num_points) < 1:
            raise InvalidArgumentError(f"num_points must be >= 1; got {num_points!r}")
        w, h = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.num_points = int(num_points)
        self.input_size = (int(w), int(h))

    def encode(self, landmarks, visible=None):
        """Targets for one example: ``landmarks`` ``(K, 2)`` crop pixels (tf tensors) → dict of tensors."""
        raise NotImplementedError

    def decode(self, outputs):
        """Alias of calling the layer: network outputs → ``{"landmarks", "scores", ...}``."""
        return self(outputs)

    def get_config(self):
        config = super().get_config()
        config.update({"num_points": self.num_points, "input_size": list(self.input_size)})
        return config


def one_hot_cells(cells, num_cells: int, dtype="float32"):
    """``(B, K)`` integer cell indices → ``(B, num_cells, K)`` one-hot, built with EQUAL + CAST.

    (No ONE_HOT or GATHER op: both are rejected or restricted by the TFLite GPU delegate.)
    """
    iota = ops.reshape(ops.arange(num_cells, dtype=cells.dtype), (1, num_cells, 1))
    return ops.cast(ops.equal(ops.expand_dims(cells, 1), iota), dtype)


def gather_cells(maps, one_hot):
    """Values of ``maps`` ``(B, HW, K[, ...])`` at the cells of a ``(B, HW, K)`` one-hot → ``(B, K[, ...])``."""
    extra = len(maps.shape) - 3
    oh = one_hot
    for _ in range(extra):
        oh = ops.expand_dims(oh, -1)
    return ops.sum(maps * oh, axis=1)


def first_max_cells(maps):
    """Row, column and one-hot of each map's first maximum (row-major order, i.e. ``argmax`` of the
    flattened map), for ``maps`` ``(B, H, W, K)``.

    Returns ``(row (B, K), col (B, K), one_hot (B, H, W, K))``; row and col are float. Built from
    REDUCE_MAX, EQUAL, CAST, MUL and SUM only: ``keras.ops.argmax`` on floats adds a sign-bit test
    (``BitwiseAnd``) that TFLite cannot convert without Flex ops, and a flat index above 2048 would not
    be exact on an fp16 GPU delegate, while row and column indices (< 2048) are.
    """
    _, h, w, _ = maps.shape
    dtype = maps.dtype
    top = ops.max(maps, axis=(1, 2), keepdims=True)
    at_max = ops.cast(ops.equal(maps, top), dtype)  # (B, H, W, K)
    rows = np.arange(h, dtype=np.float32).reshape(1, h, 1)
    cols = np.arange(w, dtype=np.float32).reshape(1, w, 1)
    # first row holding a maximum: the largest (h - row) among rows that hold one
    row_has = ops.max(at_max, axis=2)  # (B, H, K)
    row = float(h) - ops.max(row_has * (float(h) - rows), axis=1)  # (B, K)
    row_oh = ops.cast(ops.equal(ops.expand_dims(row, 1), rows), dtype)  # (B, H, K)
    in_row = ops.sum(at_max * ops.expand_dims(row_oh, 2), axis=1)  # (B, W, K)
    col = float(w) - ops.max(in_row * (float(w) - cols), axis=1)
    col_oh = ops.cast(ops.equal(ops.expand_dims(col, 1), cols), dtype)  # (B, W, K)
    return row, col, ops.expand_dims(row_oh, 2) * ops.expand_dims(col_oh, 1)
