"""``ImageNormalization``: uint8 (or float 0-255) RGB → ``(x / 255 - mean) / std``, one fused multiply-add."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from lmkzoo.api_export import lmkzoo_export

__all__ = ["ImageNormalization"]


@lmkzoo_export
class ImageNormalization(keras.layers.Layer):
    """Normalise RGB pixels in ``[0, 255]``: ``x * (1 / (255 std)) - mean / std`` (a MUL and an ADD in exports)."""

    def __init__(self, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self._scale = (1.0 / (255.0 * np.asarray(self.std))).astype("float32")
        self._offset = (-np.asarray(self.mean) / np.asarray(self.std)).astype("float32")

    def call(self, images):
        x = ops.cast(images, "float32")
        return x * self._scale + self._offset

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std)}
