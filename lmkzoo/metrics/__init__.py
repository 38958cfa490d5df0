"""Evaluation metrics: NME under every standard normalisation, failure rate, CED / AUC, Point-Var."""

from lmkzoo.metrics.ced import auc, ced, failure_rate, plot_ced
from lmkzoo.metrics.nme import NORMALIZATIONS, nme, normalizing_distance, point_errors, point_var

__all__ = [
    "NORMALIZATIONS",
    "auc",
    "ced",
    "failure_rate",
    "nme",
    "normalizing_distance",
    "plot_ced",
    "point_errors",
    "point_var",
]
