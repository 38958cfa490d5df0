"""Synthetic faces with marks at their landmarks, for dummy data and pipeline tests (no real images).

Every landmark sits at a pixel centre (``i + 0.5`` in lmkzoo's convention) and is drawn as a 3x3 mark whose
centre pixel is white and whose ring is coloured by side (image-left points red, image-right points blue,
midline points green, following the scheme's point names), on a dark background with a grey face ellipse.
So a test can check both the numbers (the parsed point equals the known value) and the content (the pixel
under the converted point is a mark, and after a flip the red marks are on the other side).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmkzoo import schemes

__all__ = ["face_points", "draw_face", "draw_marks", "save_image", "write_pts", "side_of_points", "SIDE_COLORS"]

SIDE_COLORS = {-1: (230, 40, 40), 0: (40, 200, 40), 1: (40, 40, 230)}  # left red, midline green, right blue
_MEANFACES = {"ibug68": "pipnet_300w", "wflw98": "pipnet_wflw", "cofw29": "pipnet_cofw", "aflw19": "pipnet_aflw",
              "jd106": "pipnet_lapa"}


def side_of_points(scheme) -> np.ndarray:
    """-1 for image-left points, +1 for image-right ones, 0 for the midline (``Scheme.sides``)."""
    return schemes.get(scheme).sides


def _profile_shape(k: int) -> np.ndarray:
    """A deterministic profile-like outline for schemes without a mean face (menpo39): an arc plus inner points."""
    t = np.linspace(-0.5 * np.pi, 0.5 * np.pi, k // 2)
    arc = np.stack([0.35 + 0.3 * np.cos(t), 0.5 + 0.42 * np.sin(t)], 1)
    inner = np.stack([np.linspace(0.45, 0.8, k - len(arc)), np.linspace(0.25, 0.8, k - len(arc))], 1)
    return np.concatenate([arc, inner])


def face_points(scheme, box, *, jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """``(K, 2)`` landmark positions (pixel centres, lmkzoo convention) of a face filling ``box`` (x0, y0, x1, y1).

    The layout is the scheme's PIPNet mean face (a profile arc for menpo39); ``jitter`` adds noise (in pixels)."""
    from lmkzoo.codecs.pipnet_codec import packaged_meanface

    s = schemes.get(scheme)
    mf = packaged_meanface(_MEANFACES[s.name]) if s.name in _MEANFACES else _profile_shape(s.num_points)
    x0, y0, x1, y1 = (float(v) for v in box)
    p = np.array([x0, y0]) + mf * np.array([x1 - x0, y1 - y0])
    if jitter:
        p += np.random.default_rng(seed).normal(0.0, jitter, p.shape)
    return (np.floor(p) + 0.5).astype(np.float32)


def draw_face(size, points, scheme, *, seed: int = 0) -> np.ndarray:
    """A uint8 RGB ``(H, W, 3)`` image (``size`` = (W, H)) with the marks of ``points`` (see the module doc)."""
    w, h = int(size[0]), int(size[1])
    rng = np.random.default_rng(seed)
    img = (30 + rng.integers(0, 25, (h, w, 3))).astype(np.uint8)
    p = np.asarray(points, np.float64)
    lo, hi = p.min(0), p.max(0)
    c, r = (lo + hi) / 2, np.maximum((hi - lo) / 2 * 1.1, 2.0)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    inside = ((xx - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 <= 1.0
    img[inside] = (110, 100, 95)
    return draw_marks(img, p, scheme)


def draw_marks(image, points, scheme) -> np.ndarray:
    """Draw the landmark marks of ``points`` onto ``image`` (in place; returned)."""
    img = image
    h, w = img.shape[:2]
    p = np.asarray(points, np.float64)
    sides = side_of_points(scheme)
    for (x, y), side in zip(p, sides):
        i, j = int(np.floor(x)), int(np.floor(y))
        img[max(j - 1, 0): j + 2, max(i - 1, 0): i + 2] = SIDE_COLORS[int(side)]
    for x, y in p:  # centres last so that touching marks never hide a centre
        i, j = int(np.floor(x)), int(np.floor(y))
        if 0 <= i < w and 0 <= j < h:
            img[j, i] = 255
    return img


def save_image(path, image, *, quality: int = 95) -> Path:
    """Write an RGB image; the suffix picks the format (.jpg quality ``quality``, .png, .bmp)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1]), params):
        raise OSError(f"could not write {path}")
    return path


def _num(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


def write_pts(path, points_ours) -> Path:
    """An iBUG ``.pts`` (1-based: ``pts = ours + 0.5``) for points in lmkzoo's convention."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    p = np.asarray(points_ours, np.float64) + 0.5
    lines = ["version: 1", f"n_points:  {len(p)}", "{"] + [f"{_num(x)} {_num(y)}" for x, y in p] + ["}"]
    path.write_text("\n".join(lines) + "\n")
    return path
