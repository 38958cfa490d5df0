"""UGLLI (Kumar et al. 2019): DU-Net heatmaps + Cholesky Estimator Network."""
from lmkzoo.models.uglli.uglli_network import UGLLI, CholeskyFactor, NearestUpsampling

__all__ = ["UGLLI", "CholeskyFactor", "NearestUpsampling"]
