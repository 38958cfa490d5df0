"""Coordinates, boxes and 2-D transforms: the one place that knows lmkzoo's pixel convention.

Convention (docs/design.md §1)
-------------------------
Points are ``(x, y)`` in pixels of the image they belong to, with ``(0, 0)`` the top-left *corner* of the
top-left pixel, so that pixel's centre is ``(0.5, 0.5)`` and an image of width ``W`` spans ``[0, W]``.
Boxes are ``(x0, y0, x1, y1)`` in the same convention (``x1 - x0`` is the width, no ``+1``).

Other conventions and how they convert:

* iBUG ``.pts`` files are 1-based pixel centres: ``ours = pts - 0.5``.
* OpenCV / dlib / numpy indices put pixel ``i``'s centre at ``i``: ``ours = cv + 0.5``.

Affine transforms are 2x3 float64 matrices ``M`` acting on column vectors ``[x, y, 1]``; every matrix in
lmkzoo maps points *in this convention* (source image → destination image). :func:`warp_affine` converts
to OpenCV's centre convention internally, so the image and its points can never drift apart by half a
pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError

__all__ = [
    "from_pts_convention",
    "to_pts_convention",
    "from_center_convention",
    "to_center_convention",
    "points_bbox",
    "enlarge_box",
    "square_box",
    "clip_box",
    "box_to_affine",
    "affine_to_box",
    "similarity_umeyama",
    "apply_affine",
    "invert_affine",
    "compose_affine",
    "affine_scale",
    "transform_covariance",
    "warp_affine",
    "crop_to_box",
    "five_point_template",
    "align_five_points",
    "flip_points",
]


# ---------------------------------------------------------------------------------------------------------
# conventions


def from_pts_convention(points) -> np.ndarray:
    """iBUG ``.pts`` (1-based pixel centres) → lmkzoo corner convention (``- 0.5``)."""
    return np.asarray(points, dtype=np.float64) - 0.5


def to_pts_convention(points) -> np.ndarray:
    """lmkzoo corner convention → iBUG ``.pts`` (1-based pixel centres)."""
    return np.asarray(points, dtype=np.float64) + 0.5


def from_center_convention(points) -> np.ndarray:
    """0-based pixel-centre convention (OpenCV, dlib XML, numpy indices) → lmkzoo (``+ 0.5``)."""
    return np.asarray(points, dtype=np.float64) + 0.5


def to_center_convention(points) -> np.ndarray:
    """lmkzoo corner convention → 0-based pixel-centre convention (``- 0.5``)."""
    return np.asarray(points, dtype=np.float64) - 0.5


# ---------------------------------------------------------------------------------------------------------
# boxes


def _as_boxes(box) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64)
    if b.shape[-1:] != (4,):
        raise ShapeMismatchError(f"a box must have 4 values (x0, y0, x1, y1); got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise InvalidArgumentError(f"box has non-finite values: {b.tolist()}")
    if np.any(b[..., 2] < b[..., 0]) or np.any(b[..., 3] < b[..., 1]):
        raise InvalidArgumentError(f"box must satisfy x1 >= x0 and y1 >= y0 (x0, y0, x1, y1); got {b.tolist()}")
    return b


def _as_points(points, name: str = "points") -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] != 2:
        raise ShapeMismatchError(f"{name} must have shape (..., K, 2); got {p.shape}")
    return p


def points_bbox(points, visible=None) -> np.ndarray:
    """Tight box ``(x0, y0, x1, y1)`` of points ``(..., K, 2)``, over visible points only if given."""
    p = _as_points(points)
    if visible is not None:
        v = np.asarray(visible, dtype=bool)
        if v.shape != p.shape[:-1]:
            raise ShapeMismatchError(f"visible must have shape {p.shape[:-1]}; got {v.shape}")
        big = np.where(v[..., None], p, np.nan)
        with np.errstate(all="ignore"):
            lo, hi = np.nanmin(big, axis=-2), np.nanmax(big, axis=-2)
    else:
        lo, hi = p.min(axis=-2), p.max(axis=-2)
    return np.concatenate([lo, hi], axis=-1)


def enlarge_box(box, scale: float | Sequence[float] = 1.0, *, shift=(0.0, 0.0)) -> np.ndarray:
    """Scale a box about its centre, then shift the centre by ``shift`` times the (original) size.

    ``scale`` is one factor or ``(sx, sy)``. ``shift=(0, 0.1)`` moves the box down by 10% of its height
    (PIPNet's demo crops move the top edge of detector boxes down this way).
    """
    b = _as_boxes(box)
    sx, sy = (scale, scale) if np.isscalar(scale) else tuple(scale)
    if sx <= 0 or sy <= 0:
        raise InvalidArgumentError(f"scale must be > 0; got {scale!r}")
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    cx = (b[..., 0] + b[..., 2]) / 2 + shift[0] * w
    cy = (b[..., 1] + b[..., 3]) / 2 + shift[1] * h
    return np.stack([cx - sx * w / 2, cy - sy * h / 2, cx + sx * w / 2, cy + sy * h / 2], axis=-1)


def square_box(box, mode: str = "max") -> np.ndarray:
    """Make a box square about its centre with side ``max(w, h)`` (``mode="max"``), ``min`` or ``mean``."""
    b = _as_boxes(box)
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    if mode == "max":
        s = np.maximum(w, h)
    elif mode == "min":
        s = np.minimum(w, h)
    elif mode == "mean":
        s = (w + h) / 2
    else:
        raise InvalidArgumentError(f"mode must be one of 'max', 'min', 'mean'; got {mode!r}")
    cx, cy = (b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2
    return np.stack([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], axis=-1)


def clip_box(box, width: float, height: float) -> np.ndarray:
    """Clip a box to the image ``[0, width] x [0, height]``."""
    b = _as_boxes(box).copy()
    b[..., 0::2] = np.clip(b[..., 0::2], 0, width)
    b[..., 1::2] = np.clip(b[..., 1::2], 0, height)
    return b


# ---------------------------------------------------------------------------------------------------------
# affine transforms


def _as_affine(m) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.shape[-2:] != (2, 3):
        raise ShapeMismatchError(f"an affine transform must be a 2x3 matrix; got shape {m.shape}")
    return m


def _to3(m: np.ndarray) -> np.ndarray:
    out = np.zeros(m.shape[:-2] + (3, 3))
    out[..., :2, :] = m
    out[..., 2, 2] = 1.0
    return out


def box_to_affine(box, out_size) -> np.ndarray:
    """The 2x3 affine that maps the box ``(x0, y0, x1, y1)`` onto an ``out_size = (W, H)`` (or one int) image.

    The box's corner ``(x0, y0)`` goes to ``(0, 0)`` and ``(x1, y1)`` to ``(W, H)``; a non-square box is
    stretched per axis (PIPNet's crops do this). Square the box first to keep the aspect ratio.
    """
    b = _as_boxes(box)
    ow, oh = (out_size, out_size) if np.isscalar(out_size) else tuple(out_size)
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    if np.any(w <= 0) or np.any(h <= 0):
        raise InvalidArgumentError(f"box must have positive width and height; got {b.tolist()}")
    sx, sy = ow / w, oh / h
    zero = np.zeros_like(sx)
    return np.stack(
        [np.stack([sx, zero, -sx * b[..., 0]], -1), np.stack([zero, sy, -sy * b[..., 1]], -1)], axis=-2
    )


def affine_to_box(m, out_size) -> np.ndarray:
    """The image-space box that an axis-aligned crop transform ``m`` (from :func:`box_to_affine`) cuts out."""
    ow, oh = (out_size, out_size) if np.isscalar(out_size) else tuple(out_size)
    corners = apply_affine(np.array([[0.0, 0.0], [ow, oh]]), invert_affine(m))
    return np.concatenate([corners[..., 0, :], corners[..., 1, :]], axis=-1)


def apply_affine(points, m) -> np.ndarray:
    """Apply 2x3 ``m`` to points ``(..., K, 2)``; batched matrices ``(..., 2, 3)`` broadcast with points."""
    p = _as_points(points)
    m = _as_affine(m)
    return np.einsum("...ij,...kj->...ki", m[..., :, :2], p) + m[..., None, :, 2]


def invert_affine(m) -> np.ndarray:
    """Inverse of a 2x3 affine (batched)."""
    m = _as_affine(m)
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    det = a * e - b * d  # closed form: this runs once per face in predict
    if np.any(np.abs(det) < 1e-12):
        raise InvalidArgumentError("affine transform is singular (determinant 0) and cannot be inverted")
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    out = np.empty(m.shape, dtype=np.float64)
    out[..., 0, 0], out[..., 0, 1], out[..., 0, 2] = ia, ib, -(ia * c + ib * f)
    out[..., 1, 0], out[..., 1, 1], out[..., 1, 2] = id_, ie, -(id_ * c + ie * f)
    return out


def compose_affine(*ms) -> np.ndarray:
    """``compose_affine(A, B, C)`` applies A first, then B, then C (returns C∘B∘A)."""
    if not ms:
        raise InvalidArgumentError("compose_affine needs at least one transform")
    out = _to3(_as_affine(ms[0]))
    for m in ms[1:]:
        out = _to3(_as_affine(m)) @ out
    return out[..., :2, :]


def affine_scale(m) -> np.ndarray:
    """Mean linear scale ``sqrt(|det A|)`` of an affine (batched)."""
    m = _as_affine(m)
    return np.sqrt(np.abs(np.linalg.det(m[..., :, :2])))


def transform_covariance(cov, m) -> np.ndarray:
    """Covariances ``(..., K, 2, 2)`` of points under the affine ``m``: ``A Σ Aᵀ``."""
    cov = np.asarray(cov, dtype=np.float64)
    a = _as_affine(m)[..., :, :2]
    a = a[..., None, :, :]
    return a @ cov @ np.swapaxes(a, -1, -2)


def similarity_umeyama(src, dst, *, estimate_scale: bool = True, weights=None) -> np.ndarray:
    """Least-squares similarity ``dst ≈ s R src + t`` (Umeyama 1991), returned as a 2x3 affine.

    ``src`` and ``dst`` are ``(K, 2)`` with ``K >= 2``; a reflection is never returned. ``weights`` (K,)
    weights each correspondence (e.g. 0 for a missing point).
    """
    src = _as_points(src, "src")
    dst = _as_points(dst, "dst")
    if src.ndim != 2 or src.shape != dst.shape:
        raise ShapeMismatchError(f"src and dst must both be (K, 2); got {src.shape} and {dst.shape}")
    if src.shape[0] < 2:
        raise InvalidArgumentError(f"a similarity needs at least 2 point pairs; got {src.shape[0]}")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise InvalidArgumentError("src and dst must be finite (got NaN or inf)")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(src),) or np.any(w < 0) or w.sum() <= 0:
        raise InvalidArgumentError(f"weights must be ({len(src)},) non-negative with a positive sum")
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    sc, dc = src - mu_s, dst - mu_d
    var_s = np.sum(w * np.sum(sc**2, axis=1))
    cov = (dc * w[:, None]).T @ sc
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    r = u @ np.diag(sign) @ vt
    if estimate_scale:
        if var_s <= 0:
            raise InvalidArgumentError("src points are all identical; the scale is undefined")
        s = np.sum(d * sign) / var_s
    else:
        s = 1.0
    t = mu_d - s * r @ mu_s
    return np.concatenate([s * r, t[:, None]], axis=1)


# ---------------------------------------------------------------------------------------------------------
# image warps


def _cv2():
    import cv2

    return cv2


def warp_affine(image, m, out_size, *, interpolation: str = "linear", border_value=0) -> np.ndarray:
    """Warp ``image`` (H, W[, C]) with the corner-convention affine ``m`` into ``out_size = (W, H)``.

    A point ``p`` of ``image`` lands at ``apply_affine(p, m)`` of the result, exactly (OpenCV's centre
    convention is handled here). ``interpolation`` is ``"linear"``, ``"nearest"``, ``"cubic"`` or ``"area"``.
    """
    cv2 = _cv2()
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ShapeMismatchError(f"image must be (H, W) or (H, W, C); got shape {img.shape}")
    ow, oh = (out_size, out_size) if np.isscalar(out_size) else tuple(out_size)
    flags = {
        "linear": cv2.INTER_LINEAR,
        "nearest": cv2.INTER_NEAREST,
        "cubic": cv2.INTER_CUBIC,
        "area": cv2.INTER_AREA,
    }
    if interpolation not in flags:
        raise InvalidArgumentError(f"interpolation must be one of {sorted(flags)}; got {interpolation!r}")
    # centre convention: q_cv = M (p_cv + 0.5) - 0.5
    m = _as_affine(m)
    shift = m[:, :2] @ np.array([0.5, 0.5]) + m[:, 2] - 0.5
    mcv = np.concatenate([m[:, :2], shift[:, None]], axis=1)
    flag = flags[interpolation]
    if interpolation == "area":  # INTER_AREA is only defined for resizes; fall back to linear for warps
        flag = cv2.INTER_LINEAR
    bv = border_value if np.isscalar(border_value) else tuple(float(v) for v in border_value)
    return cv2.warpAffine(img, mcv, (int(ow), int(oh)), flags=flag, borderMode=cv2.BORDER_CONSTANT, borderValue=bv)


def crop_to_box(image, box, out_size, **kwargs):
    """Cut ``box`` out of ``image`` resized to ``out_size``; returns ``(crop, M)`` with M image→crop."""
    m = box_to_affine(box, out_size)
    return warp_affine(image, m, out_size, **kwargs), m


# ---------------------------------------------------------------------------------------------------------
# 5-point alignment

# Five reference points (left eye centre, right eye centre, nose tip, left / right mouth corner; "left" is
# image-left) of the widely used 112x112 ArcFace alignment template, in the centre convention of its
# source, divided by 112 here (corner convention, +0.5 px first). Landmark models need the whole face
# (brows to chin, ear to ear) inside the crop, so :func:`five_point_template` shrinks it about the crop
# centre by ``face_scale`` and can move it (``shift_y``).
_ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def five_point_template(size=192, *, face_scale: float = 0.62, shift_y: float = 0.0) -> np.ndarray:
    """Reference positions ``(5, 2)`` of the five points in a ``size`` (int or (W, H)) aligned crop.

    ``face_scale`` shrinks the ArcFace template about the crop centre so the jaw and brows fit (0.62 puts
    the eye-to-mouth distance at about 22% of the crop height, leaving the whole 68-point face inside);
    ``shift_y`` moves it by a fraction of the crop height.
    """
    w, h = (size, size) if np.isscalar(size) else tuple(size)
    t = (_ARCFACE_112 + 0.5) / 112.0
    t = (t - 0.5) * face_scale + 0.5
    t[:, 1] += shift_y
    return t * np.array([w, h], dtype=np.float64)


def align_five_points(five_points, size=192, **template_kwargs) -> np.ndarray:
    """Similarity (2x3, image → crop) that maps five points ``(5, 2)`` onto :func:`five_point_template`."""
    fp = _as_points(five_points, "five_points")
    if fp.shape != (5, 2):
        raise ShapeMismatchError(f"five_points must have shape (5, 2); got {fp.shape}")
    return similarity_umeyama(fp, five_point_template(size, **template_kwargs))


def flip_points(points, width: float, flip_permutation=None) -> np.ndarray:
    """Mirror points horizontally in an image of ``width`` (``x → width - x``) and permute left/right."""
    p = _as_points(points).copy()
    p[..., 0] = width - p[..., 0]
    if flip_permutation is not None:
        perm = np.asarray(flip_permutation)
        if perm.shape != (p.shape[-2],):
            raise ShapeMismatchError(
                f"flip_permutation has {perm.shape} entries but the points have {p.shape[-2]} landmarks"
            )
        p = p[..., perm, :]
    return p
