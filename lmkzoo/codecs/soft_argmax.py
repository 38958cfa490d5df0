"""Soft-argmax over heatmaps (Robinson et al. 2019, Eq. 2) and the heatmap scale ``τ`` (§3.1), in ``keras.ops``.

Heatmaps are ``(B, H, W, K)`` raw scores. ``p = softmax(β h)`` over the ``H·W`` pixels of each landmark's
map, the location is the expectation ``s̃ = Σ p(x)·x`` and the scale ``τ(h) = Σ p(x)‖x − s̃‖_α^α`` (α = 1:
Laplace, α = 2: Gaussian). Coordinates are *heatmap pixels in lmkzoo's corner convention*: pixel
``(i, j)`` (column i, row j) has its centre at ``(i + 0.5, j + 0.5)``.

The scale is returned **per axis**, ``τ_a = Σ p(x)|x_a − s̃_a|^α`` for ``a ∈ {x, y}``: the paper's scalar
``τ`` is their sum (``‖·‖_α^α`` is a sum over the coordinates), and a 2-D distribution with independent
axes is fully described by the two per-axis values (so the KL losses, which add the closed forms of the
two axes, and the codec's covariance can use both).

Every op here is TFLite-GPU friendly: the softmax runs on the last axis (channels-first after one
TRANSPOSE), the expectation is a 2-D MATMUL (FULLY_CONNECTED), axes are separated with SPLIT (never a
shrinking strided slice) and there is no GATHER.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from lmkzoo.errors import InvalidArgumentError

__all__ = ["grid_centers", "spatial_softmax", "probabilities_to_heatmaps", "soft_argmax", "soft_argmax_scale"]


def grid_centers(width: int, height: int) -> np.ndarray:
    """``(H·W, 2)`` float32 pixel centres ``(i + 0.5, j + 0.5)`` in row-major (``j·W + i``) order."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5], axis=-1).astype("float32")


def spatial_softmax(heatmaps, beta: float = 1.0):
    """``(B, H, W, K)`` scores → ``(B, K, H·W)`` probabilities ``softmax(β h)`` over each map's pixels."""
    _, h, w, k = heatmaps.shape
    x = ops.transpose(ops.reshape(heatmaps, (-1, h * w, k)), (0, 2, 1))
    if float(beta) != 1.0:
        x = x * float(beta)
    return ops.softmax(x, axis=-1)


def probabilities_to_heatmaps(probs, height: int, width: int):
    """``(B, K, H·W)`` probabilities → ``(B, H, W, K)`` maps (the discriminator's channels-last layout)."""
    k = probs.shape[1]
    return ops.reshape(ops.transpose(probs, (0, 2, 1)), (-1, height, width, k))


def soft_argmax(probs, centers):
    """Expected location ``Σ p(x)·x``: ``(B, K, H·W)`` probabilities, ``(H·W, 2)`` centres → ``(B, K, 2)``."""
    k, hw = probs.shape[1], probs.shape[2]
    c = ops.convert_to_tensor(centers, dtype=probs.dtype)
    return ops.reshape(ops.matmul(ops.reshape(probs, (-1, hw)), c), (-1, k, 2))


def soft_argmax_scale(probs, centers, mean, alpha: int = 1):
    """Per-axis ``τ_a = Σ p(x)|x_a − s̃_a|^α`` → ``(B, K, 2)`` (heatmap pixels, or pixels² for α = 2).

    ``mean`` is the soft-argmax ``s̃`` ``(B, K, 2)``; ``centers`` the ``(H·W, 2)`` pixel centres.
    """
    if alpha not in (1, 2):
        raise InvalidArgumentError(f"alpha must be 1 (Laplace) or 2 (Gaussian); got {alpha!r}")
    hw = probs.shape[2]
    cx, cy = np.split(np.asarray(centers, dtype="float32"), 2, axis=-1)
    mx, my = ops.split(mean, 2, axis=-1)  # (B, K, 1) each
    out = []
    for c, m in ((cx, mx), (cy, my)):
        d = ops.convert_to_tensor(c.reshape(1, 1, hw), dtype=probs.dtype) - m  # (B, K, HW)
        d = ops.abs(d) if alpha == 1 else ops.square(d)
        out.append(ops.sum(probs * d, axis=-1, keepdims=True))
    return ops.concatenate(out, axis=-1)
