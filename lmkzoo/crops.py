"""Crop policies: how a face box (or five points) becomes the 2x3 affine that cuts the network input.

One function per policy, in numpy for inference; ``lmkzoo.data.transforms`` has the TensorFlow twin used
by the training pipeline, and a test checks that both give the same affine. Policies (zoo.yaml
``input.crop``):

* ``box``: the box scaled by ``scale`` about its centre (``(sx, sy)`` or one number), moved by
  ``shift`` (fractions of its size), optionally made square (``square: true``), then stretched onto the
  input (PIPNet's crops are not square; a square box keeps the aspect ratio).
* ``five_point``: the similarity that maps the five points onto the template
  (:func:`lmkzoo.geometry.five_point_template` with ``template_scale`` / ``template_shift``).
* ``five_point_hull``: the square box around the five points, side ``scale`` (default 2) times the larger
  side of their hull (LaplaceKL style).
* ``none``: the whole image resized to the input.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lmkzoo import geometry
from lmkzoo.errors import InvalidArgumentError

__all__ = ["crop_box", "crop_affine", "five_point_hull_box", "face_box_from_five_points", "as_pair", "template_kwargs"]


def as_pair(v, default):
    """A crop setting as ``(x, y)``: ``None`` → ``(default, default)``, one number → both, else its two values."""
    if v is None:
        return (float(default), float(default))
    if np.isscalar(v):
        return (float(v), float(v))
    return (float(v[0]), float(v[1]))


def template_kwargs(crop: Mapping) -> dict:
    """The ``five_point`` policy's template arguments (``face_scale``, ``shift_y``) set in ``crop``."""
    kw = {}
    if crop.get("template_scale") is not None:
        kw["face_scale"] = float(crop["template_scale"])
    if crop.get("template_shift") is not None:
        kw["shift_y"] = float(crop["template_shift"])
    return kw


def crop_box(box, crop: Mapping) -> np.ndarray:
    """The image-space box that the ``box`` policy cuts for a face box ``(x0, y0, x1, y1)``."""
    sx, sy = as_pair(crop.get("scale"), 1.0)
    shift = as_pair(crop.get("shift"), 0.0)
    b = geometry.enlarge_box(box, (sx, sy), shift=shift)
    if crop.get("square", False):
        b = geometry.square_box(b)
    return b


def five_point_hull_box(five_points, scale: float = 2.0) -> np.ndarray:
    fp = np.asarray(five_points, dtype=np.float64)
    lo, hi = fp.min(axis=-2), fp.max(axis=-2)
    c = (lo + hi) / 2
    s = (hi - lo).max(axis=-1) * scale
    return np.concatenate([c - s[..., None] / 2, c + s[..., None] / 2], axis=-1)


_MEAN_FACE68 = None


def face_box_from_five_points(five_points) -> np.ndarray:
    """lmkzoo's face box (the tight box of the 68 iBUG points, the detectors' convention) for a face given by its
    five points ``(5, 2)``: the 300-W mean face, aligned to the five points by a similarity, boxed.

    Box-crop models take this box when a caller gives five points only (a box around the five points themselves
    would be far too small: they span the eyes to the mouth corners).
    """
    global _MEAN_FACE68
    from lmkzoo import schemes
    from lmkzoo.assets import scheme_meanface

    if _MEAN_FACE68 is None:
        _MEAN_FACE68 = scheme_meanface("ibug68")
    mean5 = schemes.get("ibug68").five_points(_MEAN_FACE68)
    m = geometry.similarity_umeyama(mean5, np.asarray(five_points, dtype=np.float64))
    return geometry.points_bbox(geometry.apply_affine(_MEAN_FACE68, m))


def crop_affine(crop: Mapping, input_size, *, box=None, five_points=None, image_size=None) -> np.ndarray:
    """2x3 affine (image → network input) for one face under the policy ``crop``."""
    policy = crop.get("policy", "box")
    if policy == "box":
        if box is None:
            raise InvalidArgumentError("the 'box' crop policy needs a face box")
        return geometry.box_to_affine(crop_box(box, crop), input_size)
    if policy == "five_point":
        if five_points is None:
            raise InvalidArgumentError("the 'five_point' crop policy needs five points")
        return geometry.align_five_points(five_points, input_size, **template_kwargs(crop))
    if policy == "five_point_hull":
        if five_points is None:
            raise InvalidArgumentError("the 'five_point_hull' crop policy needs five points")
        return geometry.box_to_affine(five_point_hull_box(five_points, float(crop.get("scale", 2.0))), input_size)
    if policy == "none":
        if image_size is None:
            raise InvalidArgumentError("the 'none' crop policy needs the image size")
        w, h = image_size
        return geometry.box_to_affine([0.0, 0.0, float(w), float(h)], input_size)
    raise InvalidArgumentError(f"unknown crop policy {policy!r}; allowed: box, five_point, five_point_hull, none")
