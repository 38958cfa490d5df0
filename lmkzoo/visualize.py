"""Drawing landmarks: points coloured by side, the scheme's skeleton, grids of examples.

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

__all__ = ["draw_landmarks", "make_grid", "SIDE_COLORS", "SKELETON_COLOR"]

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
