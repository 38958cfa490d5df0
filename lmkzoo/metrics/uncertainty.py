"""Predicted uncertainty against actual error (UGLLI paper Figure 3).

The scalar uncertainty of a landmark with covariance ``Σ`` is ``|Σ|^(1/4)`` (pixels: the geometric mean of
the 1-σ ellipse's semi-axes). Figure 3 plots the normalised uncertainty against the normalised location
error, once per landmark (every visible landmark of every image is a point) and once per image (both
averaged over the image's visible landmarks), and reports Pearson's correlation coefficient of each plot.
Both quantities are divided by the same per-image distance as the NME (``norm``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError
from lmkzoo.metrics.nme import _check_points, _check_visible, normalizing_distance

__all__ = ["scalar_uncertainty", "pearson", "UncertaintyCorrelation", "uncertainty_error_correlation",
           "mahalanobis_squared", "ellipse_coverage", "fit_covariance_scale", "GAUSSIAN_COVERAGE"]

#: fraction of a 2-D Gaussian inside its k-sigma ellipse: 1 - exp(-k^2 / 2)
GAUSSIAN_COVERAGE = {1: float(1 - np.exp(-0.5)), 2: float(1 - np.exp(-2.0))}


def scalar_uncertainty(covariance) -> np.ndarray:
    """``|Σ|^(1/4)`` of covariances ``(..., 2, 2)`` → ``(...)`` (same length unit as the points)."""
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.shape[-2:] != (2, 2):
        raise ShapeMismatchError(f"covariances must have shape (..., 2, 2); got {cov.shape}")
    return np.abs(np.linalg.det(cov)) ** 0.25


def pearson(x, y) -> float:
    """Pearson's correlation coefficient of two equally long samples (NaN if either is constant)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ShapeMismatchError(f"samples must have the same length; got {x.size} and {y.size}")
    if x.size < 2:
        raise InvalidArgumentError(f"Pearson's correlation needs at least 2 values; got {x.size}")
    xc, yc = x - x.mean(), y - y.mean()
    den = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    return float((xc * yc).sum() / den) if den > 0 else float("nan")


@dataclasses.dataclass
class UncertaintyCorrelation:
    """Figure-3 statistics. ``errors`` / ``uncertainties`` are ``(N, K)`` normalised values (NaN where a
    landmark is invisible or the image's distance is zero); ``image_errors`` / ``image_uncertainties``
    ``(N,)`` their per-image means over visible landmarks."""

    per_landmark: float
    per_image: float
    errors: np.ndarray
    uncertainties: np.ndarray
    image_errors: np.ndarray
    image_uncertainties: np.ndarray

    def as_dict(self) -> dict:
        return {"pearson_per_landmark": self.per_landmark, "pearson_per_image": self.per_image,
                "num_landmarks": int(np.isfinite(self.errors).sum()), "num_images": int(np.isfinite(self.image_errors).sum())}


def uncertainty_error_correlation(pred, gt, covariance, *, scheme=None, norm="inter_ocular", boxes=None,
                                  image_size=None, visible=None) -> UncertaintyCorrelation:
    """Pearson correlation of predicted uncertainty ``|Σ|^(1/4)`` with the actual error (Figure 3).

    Args:
        pred, gt: ``(N, K, 2)`` points (image pixels).
        covariance: ``(N, K, 2, 2)`` predicted covariances in the same pixels (``FaceLandmarks.covariance``).
        scheme, norm, boxes, image_size, visible: as :func:`lmkzoo.metrics.nme` (the normalising distance).
    Returns:
        :class:`UncertaintyCorrelation` with ``per_landmark`` (each visible landmark of each image is a
        sample) and ``per_image`` (image means) coefficients.
    """
    pred, gt, single = _check_points(pred, gt)
    if single:
        raise ShapeMismatchError("uncertainty_error_correlation needs a set of images: points (N, K, 2)")
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.shape != pred.shape[:2] + (2, 2):
        raise ShapeMismatchError(f"covariance must have shape {pred.shape[:2] + (2, 2)}; got {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise InvalidArgumentError("covariance holds non-finite values")
    vis = _check_visible(visible, pred.shape)
    d = normalizing_distance(gt, scheme=scheme, norm=norm, boxes=boxes, image_size=image_size, visible=vis)
    ok = vis & (d > 0)[:, None]
    with np.errstate(all="ignore"):
        scale = np.where(d > 0, d, np.nan)[:, None]
        err = np.where(ok, np.linalg.norm(pred - gt, axis=-1) / scale, np.nan)
        unc = np.where(ok, scalar_uncertainty(cov) / scale, np.nan)
        cnt = ok.sum(axis=1)
        img_err = np.where(cnt > 0, np.where(ok, err, 0.0).sum(axis=1) / np.maximum(cnt, 1), np.nan)
        img_unc = np.where(cnt > 0, np.where(ok, unc, 0.0).sum(axis=1) / np.maximum(cnt, 1), np.nan)
    keep = np.isfinite(err)
    keep_img = np.isfinite(img_err)
    return UncertaintyCorrelation(
        per_landmark=pearson(err[keep], unc[keep]),
        per_image=pearson(img_err[keep_img], img_unc[keep_img]),
        errors=err, uncertainties=unc, image_errors=img_err, image_uncertainties=img_unc,
    )


def mahalanobis_squared(pred, gt, covariance, visible=None) -> np.ndarray:
    """``(gt - pred)^T Σ^-1 (gt - pred)`` per point ``(N, K)``; NaN where a point is invisible or Σ is singular."""
    pred, gt, _ = _check_points(pred, gt)
    cov = np.asarray(covariance, dtype=np.float64)
    if cov.shape != pred.shape[:-1] + (2, 2):
        raise ShapeMismatchError(f"covariance must have shape {pred.shape[:-1] + (2, 2)}; got {cov.shape}")
    vis = _check_visible(visible, pred.shape)
    d = gt - pred
    det = cov[..., 0, 0] * cov[..., 1, 1] - cov[..., 0, 1] * cov[..., 1, 0]
    with np.errstate(all="ignore"):
        q = (d[..., 0] ** 2 * cov[..., 1, 1] - d[..., 0] * d[..., 1] * (cov[..., 0, 1] + cov[..., 1, 0])
             + d[..., 1] ** 2 * cov[..., 0, 0]) / det
    return np.where(vis & (det > 0) & np.isfinite(q), q, np.nan)


def ellipse_coverage(pred, gt, covariance, visible=None) -> dict:
    """Calibration of predicted covariances: the fraction of reference points inside the predicted 1-sigma and
    2-sigma ellipses (a calibrated 2-D Gaussian holds :data:`GAUSSIAN_COVERAGE`: 39.3 % and 86.5 %)."""
    q = mahalanobis_squared(pred, gt, covariance, visible)
    q = q[np.isfinite(q)]
    if not q.size:
        raise InvalidArgumentError("no visible point with a positive-definite covariance")
    return {"coverage_1sigma": float(np.mean(q <= 1.0)), "coverage_2sigma": float(np.mean(q <= 4.0)),
            "num_points": int(q.size)}


def fit_covariance_scale(pred, gt, covariance, visible=None, *, sigma: int = 2) -> float:
    """The one factor ``s`` such that ``s * Σ``'s ``sigma``-ellipses hold a Gaussian's share of the points
    (86.5 % for 2 sigma): ``s = quantile(d^2, share) / sigma^2`` over every visible point (fit it on a validation
    set, not the test set)."""
    q = mahalanobis_squared(pred, gt, covariance, visible)
    q = q[np.isfinite(q)]
    if not q.size:
        raise InvalidArgumentError("no visible point with a positive-definite covariance")
    return float(np.quantile(q, GAUSSIAN_COVERAGE[sigma]) / sigma**2)
