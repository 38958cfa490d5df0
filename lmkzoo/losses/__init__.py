"""Losses of every lmkzoo family, as ``keras.losses.Loss`` subclasses written with ``keras.ops``."""

from lmkzoo.losses.coordinate_loss import CoordinateLoss
from lmkzoo.losses.heatmap_losses import HeatmapLoss, HeatmapMSE
from lmkzoo.losses.laplacekl_loss import GaussianKL, LaplaceKL, SoftArgmaxL2
from lmkzoo.losses.pipnet_loss import PIPLoss
from lmkzoo.losses.pipnet_stc_loss import STCLoss
from lmkzoo.losses.regression_losses import L1, L2, PointLoss, SmoothL1, SmoothWing, Wing
from lmkzoo.losses.uglli_loss import GaussianLogLikelihood

__all__ = ["CoordinateLoss", "GaussianKL", "GaussianLogLikelihood", "HeatmapLoss", "HeatmapMSE", "L1", "L2", "LaplaceKL", "PIPLoss",
           "PointLoss", "SmoothL1", "SmoothWing", "SoftArgmaxL2", "STCLoss", "Wing"]
