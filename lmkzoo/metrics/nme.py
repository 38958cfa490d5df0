"""Normalised mean error and its normalising distances.

All functions take per-image arrays and return per-image values: ``pred`` and ``gt`` are ``(N, K, 2)``
(or ``(K, 2)`` for one image, which returns a scalar). Errors are fractions, not percent.
"""

from __future__ import annotations

import numpy as np

from lmkzoo.errors import InvalidArgumentError, SchemeMismatchError, ShapeMismatchError

__all__ = ["NORMALIZATIONS", "nme", "normalizing_distance", "point_errors", "point_var"]

NORMALIZATIONS = ("inter_ocular", "inter_pupil", "bbox", "diagonal", "image")


def _as_float_array(value, name):
    """``value`` as a float64 array, or a typed error naming ``name`` (ragged or non-numeric input)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"{name} must be a numeric array; got {type(value).__name__} ({e})") from None


def _per_image(values, n, name, what):
    """Broadcast per-image ``values`` to ``(n,)``, or a typed error naming ``name``."""
    try:
        return np.broadcast_to(values, (n,)).astype(np.float64).copy()
    except ValueError:
        raise ShapeMismatchError(f"{name} must be {what} for {n} image(s); got shape {np.shape(values)}") from None


def _check_points(pred, gt):
    pred = _as_float_array(pred, "pred")
    gt = _as_float_array(gt, "gt")
    if pred.shape != gt.shape:
        raise ShapeMismatchError(f"pred and gt must have the same shape; got {pred.shape} and {gt.shape}")
    if pred.ndim not in (2, 3) or pred.shape[-1] != 2:
        raise ShapeMismatchError(f"points must be (N, K, 2) or (K, 2); got {pred.shape}")
    single = pred.ndim == 2
    if single:
        pred, gt = pred[None], gt[None]
    for name, arr in (("pred", pred), ("gt", gt)):
        bad = ~np.isfinite(arr)
        if bad.any():
            img, pt, _ = np.argwhere(bad)[0]
            raise InvalidArgumentError(
                f"{name} holds a non-finite value ({arr[img, pt].tolist()}) at image {img}, point {pt}; "
                "mark missing points with visible=False instead of NaN"
            )
    return pred, gt, single


def _check_visible(visible, shape):
    if visible is None:
        return np.ones(shape[:2], dtype=bool)
    v = np.asarray(visible)
    if v.ndim == 1 and len(shape) == 3 and shape[0] == 1:
        v = v[None]
    if v.shape != shape[:2]:
        raise ShapeMismatchError(f"visible must have shape {shape[:2]} (images, points); got {v.shape}")
    return v.astype(bool)


def _resolve_scheme(scheme, num_points):
    if scheme is None:
        return None
    from lmkzoo import schemes

    sch = schemes.get(scheme) if isinstance(scheme, str) else scheme
    if sch.num_points != num_points:
        raise SchemeMismatchError(
            f"scheme {sch.name!r} has {sch.num_points} points but the arrays have {num_points}"
        )
    return sch


def normalizing_distance(gt, *, scheme=None, norm="inter_ocular", boxes=None, image_size=None, visible=None):
    """Per-image normalising distance ``(N,)`` for :func:`nme` (see there for the meaning of ``norm``)."""
    gt = _as_float_array(gt, "gt")
    if gt.ndim == 2:
        gt = gt[None]
    if gt.ndim != 3 or gt.shape[-1] != 2:
        raise ShapeMismatchError(f"points must be (N, K, 2) or (K, 2); got {gt.shape}")
    n, k = gt.shape[:2]
    if not isinstance(norm, str):
        return _per_image(_as_float_array(norm, "norm"), n, "norm (per-image distances)", "one number or (N,)")
    if norm not in NORMALIZATIONS:
        raise InvalidArgumentError(f"norm must be one of {NORMALIZATIONS} or per-image distances; got {norm!r}")
    if norm in ("inter_ocular", "inter_pupil"):
        sch = _resolve_scheme(scheme, k)
        if sch is None:
            raise InvalidArgumentError(f"norm={norm!r} needs a scheme (e.g. scheme='ibug68')")
        return sch.norm_distance(gt, norm)
    if norm == "image":
        if image_size is None:
            raise InvalidArgumentError("norm='image' needs image_size (one side, or per-image (N,) or (N, 2) w, h)")
        s = _as_float_array(image_size, "image_size")
        if s.ndim >= 1 and s.shape[-1] == 2 and s.shape != (n,):
            s = np.sqrt(s[..., 0] * s[..., 1])
        return _per_image(s, n, "image_size", "one side, (N,) sides or (N, 2) (w, h)")
    # bbox / diagonal
    if boxes is None:
        from lmkzoo.geometry import points_bbox

        b = points_bbox(gt, None if visible is None else _check_visible(visible, gt.shape))
    else:
        b = _as_float_array(boxes, "boxes")
        if b.shape == (4,):
            b = np.broadcast_to(b, (n, 4))
        if b.shape != (n, 4):
            raise ShapeMismatchError(f"boxes must be (N, 4) = ({n}, 4) as (x0, y0, x1, y1); got {b.shape}")
        if not np.isfinite(b).all():
            raise InvalidArgumentError(f"boxes hold a non-finite value at image {int(np.argwhere(~np.isfinite(b))[0, 0])}")
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    if norm == "bbox":
        return np.sqrt(np.clip(w, 0, None) * np.clip(h, 0, None))
    return np.sqrt(w**2 + h**2)


def point_errors(pred, gt) -> np.ndarray:
    """Euclidean error per point ``(N, K)`` (or ``(K,)``) in the units of the inputs."""
    pred, gt, single = _check_points(pred, gt)
    e = np.linalg.norm(pred - gt, axis=-1)
    return e[0] if single else e


def nme(pred, gt, *, scheme=None, norm="inter_ocular", boxes=None, image_size=None, visible=None):
    """Normalised mean error per image: mean point error over visible points divided by a distance.

    Args:
        pred, gt: ``(N, K, 2)`` points (``(K, 2)`` for one image, which returns a scalar).
        scheme: a :class:`lmkzoo.schemes.Scheme` or its name; needed for ``inter_ocular``/``inter_pupil``.
        norm: ``"inter_ocular"`` (outer eye corners of the scheme), ``"inter_pupil"`` (eye centres),
            ``"bbox"`` (``sqrt(w*h)`` of ``boxes`` or of the tight box of the visible ground truth),
            ``"diagonal"`` (``sqrt(w² + h²)`` of the same box; Menpo), ``"image"`` (``image_size``; a pair
            ``(w, h)`` uses ``sqrt(w*h)``), or an array of per-image distances.
        visible: ``(N, K)`` booleans; invisible points are left out of the mean.

    Returns:
        ``(N,)`` float64 fractions (not percent). An image whose normalising distance is zero (or that has
        no visible point) gets **NaN**, never an exception or an infinite value, so one degenerate face
        does not hide the others; filter with ``np.isfinite`` (failure_rate and auc count NaN as failures).
    """
    pred, gt, single = _check_points(pred, gt)
    vis = _check_visible(visible, pred.shape)
    d = normalizing_distance(gt, scheme=scheme, norm=norm, boxes=boxes, image_size=image_size, visible=vis)
    err = np.linalg.norm(pred - gt, axis=-1)
    cnt = vis.sum(axis=1)
    with np.errstate(all="ignore"):
        mean_err = np.where(cnt > 0, (err * vis).sum(axis=1) / np.maximum(cnt, 1), np.nan)
        out = np.where(d > 0, mean_err / np.where(d > 0, d, 1.0), np.nan)
    return out[0] if single else out


def point_var(pred, gt, *, scheme=None, norm="inter_ocular", boxes=None, image_size=None, visible=None):
    """PIPNet's Point-Var per image: the variance of the prediction error vectors over the points.

    The error vectors ``e_k = (pred_k - gt_k) / d`` (``d`` as in :func:`nme`) of one image are treated as a
    sample; Point-Var is their total variance ``mean_k ||e_k - mean(e)||²``. A constant shift of every
    point gives 0: the metric measures how *consistent* the predicted shape is, not how far off it is
    (PIPNet §4.3.2: "the variance of the difference between the ground-truth and the predictions for each
    test image", averaged over the test set by the caller). NaN where the distance is zero.
    """
    pred, gt, single = _check_points(pred, gt)
    vis = _check_visible(visible, pred.shape)
    d = normalizing_distance(gt, scheme=scheme, norm=norm, boxes=boxes, image_size=image_size, visible=vis)
    with np.errstate(all="ignore"):
        e = (pred - gt) / np.where(d > 0, d, np.nan)[:, None, None]
        w = vis[..., None].astype(np.float64)
        cnt = w.sum(axis=1)
        mu = (e * w).sum(axis=1) / cnt
        var = (((e - mu[:, None]) ** 2) * w).sum(axis=(1, 2)) / cnt[:, 0]
    return var[0] if single else var
