"""Heatmap losses written with ``keras.ops``."""

from __future__ import annotations

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export

__all__ = ["HeatmapMSE"]


@lmkzoo_export
class HeatmapMSE(keras.losses.Loss):
    """Mean squared error between heatmaps ``(B, H, W, K)``, returned per landmark ``(B, K)``.

    Each landmark's loss is the mean over its ``H * W`` pixels; pass visibility ``(B, K)`` as
    ``sample_weight`` to drop invisible landmarks (the "target weight" of SimpleBaseline / HRNet).
    ``scale`` multiplies the difference (some recipes scale Gaussian targets to a peak of 1 and the loss
    by a constant so that it does not vanish).
    """

    def __init__(self, scale: float = 1.0, reduction="sum_over_batch_size", name="heatmap_mse", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.scale = float(scale)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        d = (y_pred - y_true) * self.scale
        return ops.mean(ops.square(d), axis=(1, 2))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
