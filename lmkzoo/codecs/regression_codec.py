"""Regression codec (LOTR, Watchareeruetai et al. 2021): coordinates regressed directly, normalised to the crop.

* **Targets** (``encode``, TensorFlow): ``coordinates = landmarks / (W, H)``, i.e. crop pixels in lmkzoo's
  corner convention divided by the crop size (0 at the crop's left / top edge, 1 at its right / bottom edge),
  and ``visible`` (the dataset's visibility, unchanged: a regressed point outside the crop is still a valid
  target, unlike a heatmap peak).
* **Decode** (``call``, keras.ops): the identity up to that scale, ``landmarks = coordinates · (W, H)``
  (LOTR needs no post-processing, §3.1). ``scores`` are a constant 1.0 per point: LOTR predicts no confidence.
  They are computed from the coordinates (``0 · mean + 1``) so that the exported graph keeps them as an output
  tensor with the batch's shape rather than a constant.

Decode ops: MUL, MEAN, ADD (no GATHER, no STRIDED_SLICE).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.codecs.base import LandmarkCodec
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError

__all__ = ["RegressionCodec"]


@lmkzoo_export
class RegressionCodec(LandmarkCodec):
    """Normalised-coordinate targets (``encode``) and their scaling back to crop pixels (``call``).

    Args:
        num_points: K.
        input_size: ``(W, H)`` of the network input (crop pixels).
    Network output read: ``coordinates`` ``(B, K, 2)``.
    """

    output_keys = ("coordinates",)

    def __init__(self, num_points, input_size=(192, 192), **kwargs):
        super().__init__(num_points=num_points, input_size=input_size, **kwargs)
        w, h = self.input_size
        if w < 1 or h < 1:
            raise InvalidArgumentError(f"input_size must be positive (width, height); got {input_size!r}")

    # ------------------------------------------------------------------------------------------ encode (tf)
    def encode(self, landmarks, visible=None):
        """``{"coordinates": (..., K, 2) fractions of the crop, "visible": (..., K)}`` (one example or a batch)."""
        import tensorflow as tf

        p = tf.convert_to_tensor(landmarks, tf.float32)
        k = self.num_points
        if p.shape.rank is not None and (p.shape.rank < 2 or p.shape[-1] != 2 or p.shape[-2] not in (None, k)):
            raise ShapeMismatchError(f"landmarks must be (..., {self.num_points}, 2); got {p.shape}")
        w, h = self.input_size
        vis = tf.ones(tf.shape(p)[:-1], tf.float32) if visible is None else tf.cast(visible, tf.float32)
        return {"coordinates": p / tf.constant([w, h], tf.float32), "visible": vis}

    # ------------------------------------------------------------------------------------------ decode (keras.ops)
    def to_pixels(self, coordinates):
        """Normalised coordinates ``(..., 2)`` → crop pixels (numpy or tensor)."""
        w, h = self.input_size
        return coordinates * np.array([w, h], dtype="float32")

    def call(self, outputs):
        coords = outputs["coordinates"] if isinstance(outputs, dict) else outputs
        coords = ops.convert_to_tensor(coords)
        w, h = self.input_size
        size = ops.convert_to_tensor(np.array([w, h], dtype="float32").reshape(1, 1, 2), dtype=coords.dtype)
        landmarks = coords * size
        scores = ops.mean(coords, axis=-1) * 0.0 + 1.0
        return {"landmarks": landmarks, "scores": scores}
