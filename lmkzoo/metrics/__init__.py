"""Evaluation metrics: NME under every standard normalisation, failure rate, CED / AUC, Point-Var, and
predicted uncertainty against actual error (UGLLI Figure 3)."""

from lmkzoo.metrics.ced import auc, ced, failure_rate, plot_ced
from lmkzoo.metrics.nme import NORMALIZATIONS, nme, normalizing_distance, point_errors, point_var
from lmkzoo.metrics.uncertainty import (
    UncertaintyCorrelation,
    pearson,
    scalar_uncertainty,
    uncertainty_error_correlation,
)

__all__ = [
    "NORMALIZATIONS",
    "UncertaintyCorrelation",
    "auc",
    "ced",
    "failure_rate",
    "nme",
    "pearson",
    "normalizing_distance",
    "plot_ced",
    "point_errors",
    "point_var",
    "scalar_uncertainty",
    "uncertainty_error_correlation",
]
