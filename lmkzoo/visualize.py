"""Drawing landmarks: points coloured by side, the scheme's skeleton, uncertainty ellipses, heatmaps, CED curves.

Colours follow the scheme's point names (``Scheme.sides``), so a person can check flips by eye: image-left points (``left_*``)
are red, image-right points (``right_*``) blue, midline points green; the skeleton (``Scheme.skeleton``) is
drawn in a light colour underneath. Coordinates are lmkzoo's (``(0, 0)`` = top-left corner of the top-left
pixel); OpenCV draws in pixel-centre coordinates, so points are shifted by -0.5 and drawn with sub-pixel
precision.
"""

from __future__ import annotations

import math

import numpy as np

from lmkzoo import schemes
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError
from lmkzoo.image_io import as_rgb_uint8

__all__ = ["draw_landmarks", "draw_faces", "draw_uncertainty", "heatmap_overlay", "plot_ced", "make_grid", "SIDE_COLORS",
           "SKELETON_COLOR"]

SIDE_COLORS = {-1: (255, 48, 48), 0: (48, 220, 48), 1: (64, 96, 255)}  # image-left red, midline green, right blue
SKELETON_COLOR = (235, 235, 200)
_SHIFT = 4  # cv2 fixed-point bits: 1/16 px


def _fixed(p) -> tuple[int, int]:
    return int(round((p[0] - 0.5) * (1 << _SHIFT))), int(round((p[1] - 0.5) * (1 << _SHIFT)))


def draw_landmarks(image, points, scheme=None, *, visible=None, radius: float | None = None, thickness: int = 1,
                   skeleton: bool = True, color=None, colors=None) -> np.ndarray:
    """A copy of ``image`` (uint8 RGB) with ``points`` (K, 2) drawn.

    Args:
        scheme: a scheme name or :class:`~lmkzoo.schemes.Scheme` (side colours and skeleton); None draws plain
            points in ``color``.
        visible: (K,) mask; invisible points are drawn as hollow circles.
        radius: point radius in pixels (default: 1 % of the image diagonal, at least 1.5).
        skeleton: draw the scheme's polylines under the points.
        color: one RGB colour for every point (overrides the side colours); colors: (K, 3) per-point colours.
    """
    import cv2

    img = np.ascontiguousarray(as_rgb_uint8(np.asarray(image)).copy())
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ShapeMismatchError(f"points must be (K, 2); got shape {p.shape}")
    sch = schemes.get(scheme) if scheme is not None else None
    if sch is not None and len(p) != sch.num_points:
        raise ShapeMismatchError(f"scheme {sch.name!r} has {sch.num_points} points; got {len(p)}")
    vis = np.ones(len(p), bool) if visible is None else np.asarray(visible).astype(bool).reshape(-1)
    if vis.shape != (len(p),):
        raise ShapeMismatchError(f"visible must have {len(p)} entries; got {vis.shape}")
    if colors is not None:
        cols = np.asarray(colors, np.int64).reshape(len(p), 3)
    elif color is not None:
        cols = np.tile(np.asarray(color, np.int64).reshape(1, 3), (len(p), 1))
    elif sch is not None:
        cols = np.array([SIDE_COLORS[int(s)] for s in sch.sides], np.int64)
    else:
        cols = np.tile(np.array(SIDE_COLORS[0]), (len(p), 1))
    h, w = img.shape[:2]
    r = max(1.5, 0.01 * math.hypot(w, h)) if radius is None else float(radius)
    if r <= 0:
        raise InvalidArgumentError(f"radius must be positive; got {radius}")
    finite = np.all(np.isfinite(p), axis=1)
    if skeleton and sch is not None:
        for a, b in sch.skeleton:
            if finite[a] and finite[b] and vis[a] and vis[b]:
                cv2.line(img, _fixed(p[a]), _fixed(p[b]), SKELETON_COLOR, max(1, thickness), cv2.LINE_AA, _SHIFT)
    rr = int(round(r * (1 << _SHIFT)))
    for i in range(len(p)):
        if not finite[i]:
            continue
        c = tuple(int(v) for v in cols[i])
        cv2.circle(img, _fixed(p[i]), rr, c, -1 if vis[i] else max(1, thickness), cv2.LINE_AA, _SHIFT)
    return img


def make_grid(images, cols: int | None = None, *, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile equally sized uint8 RGB images into one image (``cols`` columns; default about square)."""
    imgs = [as_rgb_uint8(np.asarray(im)) for im in images]
    if not imgs:
        raise InvalidArgumentError("make_grid needs at least one image")
    h, w = imgs[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in imgs):
        raise ShapeMismatchError(f"all images must have the same size; got {sorted({im.shape[:2] for im in imgs})}")
    n = len(imgs)
    cols = int(cols or math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3), pad_value, np.uint8)
    for k, im in enumerate(imgs):
        r, c = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y: y + h, x: x + w] = im
    return grid


def draw_uncertainty(image, points, covariance, *, k: float = 2.0, color=(255, 200, 0), thickness: int = 1) -> np.ndarray:
    """A copy of ``image`` with the ``k``-sigma ellipse of each point's ``(2, 2)`` covariance (image pixels)."""
    import cv2

    img = np.ascontiguousarray(as_rgb_uint8(np.asarray(image)).copy())
    p = np.asarray(points, np.float64)
    cov = np.asarray(covariance, np.float64)
    if p.ndim != 2 or cov.shape != (len(p), 2, 2):
        raise ShapeMismatchError(f"covariance must be (K, 2, 2) for points (K, 2); got {cov.shape} for {p.shape}")
    for pt, c in zip(p, cov):
        if not (np.all(np.isfinite(pt)) and np.all(np.isfinite(c))):
            continue
        vals, vecs = np.linalg.eigh((c + c.T) / 2)
        axes = k * np.sqrt(np.clip(vals, 0, None))
        angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
        centre = _fixed(pt)
        size = (int(round(axes[1] * (1 << _SHIFT))), int(round(axes[0] * (1 << _SHIFT))))
        cv2.ellipse(img, centre, size, angle, 0, 360, color, max(1, thickness), cv2.LINE_AA, _SHIFT)
    return img


def draw_faces(image, faces, *, boxes: bool = True, uncertainty: bool = True, radius: float | None = None,
               box_color=(255, 255, 255)) -> np.ndarray:
    """A copy of ``image`` with every :class:`~lmkzoo.inference.landmarker.FaceLandmarks` drawn: its face box, its
    points over the scheme's skeleton and, where the family predicts one, each point's 2-sigma ellipse."""
    import cv2

    img = as_rgb_uint8(np.asarray(image)).copy()
    if radius is None:
        sizes = [max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces]
        radius = max(1.5, 0.015 * max(sizes)) if sizes else None
    for f in faces:
        if boxes:
            b = np.asarray(f.box, np.float64)
            cv2.rectangle(img, _fixed(b[:2]), _fixed(b[2:]), box_color, 1, cv2.LINE_AA, _SHIFT)
        if uncertainty and f.covariance is not None:
            img = draw_uncertainty(img, f.points, f.covariance)
        img = draw_landmarks(img, f.points, f.scheme, radius=radius)
    return img


def heatmap_overlay(crop, heatmaps, *, alpha: float = 0.5) -> np.ndarray:
    """The crop (uint8 RGB) blended with the per-pixel maximum over the ``(h, w, K)`` heatmaps (any resolution,
    resized to the crop), coloured with a perceptual colour map: where a heatmap model looks."""
    import cv2

    img = as_rgb_uint8(np.asarray(crop))
    hm = np.asarray(heatmaps, np.float64)
    if hm.ndim != 3:
        raise ShapeMismatchError(f"heatmaps must be (h, w, K); got shape {hm.shape}")
    m = hm.max(axis=-1)
    m = (m - m.min()) / max(float(m.max() - m.min()), 1e-12)
    m = cv2.resize(m.astype(np.float32), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    colored = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.round(255 * m)), cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgumentError(f"alpha must be in [0, 1]; got {alpha}")
    return np.uint8(np.round((1 - alpha) * img + alpha * colored))


def plot_ced(curves, cutoff: float = 0.08, **kwargs):
    """CED curves as a matplotlib Figure (:func:`lmkzoo.metrics.plot_ced`)."""
    from lmkzoo.metrics import plot_ced as _plot

    return _plot(curves, cutoff, **kwargs)
