"""Heatmap losses written with ``keras.ops``."""

from __future__ import annotations

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.losses.base import StructuredLoss

__all__ = ["HeatmapMSE", "HeatmapLoss"]


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


@lmkzoo_export
class HeatmapLoss(StructuredLoss):
    """:class:`HeatmapMSE` over the heatmap codec's target dict, weighted by visibility.

    ``y_true``: ``{"heatmaps" (B, H, W, K), "visible" (B, K)}`` (:meth:`HeatmapCodec.encode`); ``y_pred``:
    ``{"heatmaps" (B, H, W, K)}``. Per example: the mean over the K landmarks of ``visible · MSE``
    (SimpleBaseline's target-weighted "JointsMSELoss" without its factor 1/2), times ``scale²`` through
    :class:`HeatmapMSE`'s ``scale``. Returns ``(B,)``.
    """

    def __init__(self, scale: float = 1.0, name="heatmap_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale = float(scale)
        self._mse = HeatmapMSE(scale=self.scale)

    def call(self, y_true, y_pred):
        pred = y_pred["heatmaps"]
        vis = ops.cast(y_true["visible"], pred.dtype)  # (B, K)
        # an invisible point's target map may hold NaN / inf (from a NaN coordinate): replace it before the MSE,
        # since 0 · NaN is NaN in the value and in the gradient
        true = ops.cast(y_true["heatmaps"], pred.dtype)
        true = ops.where(ops.expand_dims(ops.expand_dims(vis > 0, 1), 1), true, ops.zeros_like(true))
        per_point = self._mse.call(true, pred)  # (B, K)
        return ops.mean(ops.where(vis > 0, per_point * vis, ops.zeros_like(per_point)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
