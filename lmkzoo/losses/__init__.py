"""Losses of every lmkzoo family, as ``keras.losses.Loss`` subclasses written with ``keras.ops``."""

from lmkzoo.losses.heatmap_losses import HeatmapLoss, HeatmapMSE
from lmkzoo.losses.pipnet_loss import PIPLoss
from lmkzoo.losses.regression_losses import L1, L2, PointLoss, SmoothL1, SmoothWing, Wing

__all__ = ["HeatmapLoss", "HeatmapMSE", "L1", "L2", "PIPLoss", "PointLoss", "SmoothL1", "SmoothWing", "Wing"]
