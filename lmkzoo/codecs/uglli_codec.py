"""UGLLI codec (Kumar et al. 2019): heatmap spatial mean + Cholesky covariance, in lmkzoo's pixel convention.

Pixel convention (exact)
------------------------
The heatmaps are the crop at ``1 / stride`` resolution (stride 4: 64x64 for a 256x256 crop). Under lmkzoo's
corner convention (docs/design.md §1) a crop point ``p`` sits at ``p / stride`` on the heatmap, also in corner
units; the spatial mean runs over the heatmap's pixel *indices* ``x = 0 .. Wh - 1`` (docs/reference_facts.md §B:
no ``+0.5`` in the grid), and index ``i`` is the centre of heatmap pixel ``i``, i.e. corner coordinate
``i + 0.5``. So

* encode: ``target = p / stride - 0.5`` (heatmap index units; per axis ``stride = W / Wh``, ``H / Hh``);
* decode: ``p = (mu + 0.5) * stride``; covariances scale by ``stride²`` (``diag(sx, sy) Σ diag(sx, sy)``).

The official code compares the index-grid mean with ``pts / 4``, its points being in the convention of its
own crop transform; lmkzoo's ``- 0.5`` makes heatmap pixel ``i`` stand for crop pixels ``[4i, 4i + 4)``,
centre ``4i + 2``. Loss, ``Σ`` and its ``1e-5`` guards therefore live in heatmap pixels, as in the paper's
code (a converted official checkpoint would see a constant half-heatmap-pixel shift).

Mean estimators (paper §3.1, Table 3): ``relu`` (UGLLI: weighted mean of the positive heatmap values),
``softmax`` (soft-argmax) and ``tau_softmax`` (softmax of ``heatmap / temperature``), all sub-pixel and
differentiable; ``direct`` reads the mean regressed by the Cholesky Estimator Network instead (ablation).
The weights are normalised twice with ``+1e-5`` guards exactly as the official ``HeatmapStats`` does.

Covariance: the CEN's three values per landmark are ``(L00, L10, L11)`` of the lower-triangular Cholesky
factor (diagonals already through ``ELU + 1``), ``Σ = L Lᵀ = [[L00², L00 L10], [L00 L10, L10² + L11²]]``.

Decode is ``keras.ops`` only and TFLite-GPU friendly: reshapes, reductions, element-wise ops, ``split`` and
``concatenate`` (no gather, no shrinking strided slice, no one-hot).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.codecs.base import LandmarkCodec, check_covariance_scale
from lmkzoo.errors import InvalidArgumentError

__all__ = ["UGLLICodec", "MEAN_ESTIMATORS", "HEATMAP_EPSILON", "spatial_mean", "heatmap_peak", "cholesky_to_covariance"]

#: mean estimators of the paper's ablation (Table 3); ``direct`` means regressed by the CEN
MEAN_ESTIMATORS = ("relu", "softmax", "tau_softmax", "direct")
#: the official code's guard in every heatmap normalisation (pylib/Constants.py EPSILON)
HEATMAP_EPSILON = 1e-5


def _check_estimator(mean_estimator, temperature):
    if mean_estimator not in MEAN_ESTIMATORS:
        raise InvalidArgumentError(f"mean_estimator must be one of {MEAN_ESTIMATORS}; got {mean_estimator!r}")
    if not float(temperature) > 0:
        raise InvalidArgumentError(f"temperature must be > 0; got {temperature!r}")


def _grids(width: int, height: int):
    """Pixel-index grids ``(1, H·W, 1)`` in row-major (h·W + w) order."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs.reshape(1, -1, 1), ys.reshape(1, -1, 1)


def _weights(flat, mean_estimator: str, temperature: float):
    """σ(heatmap) of the mean estimator on ``(B, H·W, C)`` heatmaps (non-negative weights)."""
    if mean_estimator in ("relu", "direct"):
        return ops.relu(flat)
    tau = 1.0 if mean_estimator == "softmax" else float(temperature)
    # numerically stable softmax over the spatial axis: subtract each channel's maximum first
    peak = ops.max(flat, axis=1, keepdims=True)
    return ops.exp((flat - peak) / tau)


def spatial_mean(heatmaps, *, mean_estimator: str = "relu", temperature: float = 0.02):
    """Sub-pixel, differentiable landmark means of ``(B, H, W, C)`` heatmaps → ``(B, C, 2)`` (x, y) in
    heatmap pixel-index units (``x = 0 .. W - 1``).

    ``μ = Σ p·(x, y) / (Σ p + ε)`` with ``p = σ(H) / (Σ σ(H) + ε)``, ``ε = 1e-5`` (the official two-step
    normalisation), ``σ`` = ReLU, softmax or softmax with temperature.
    """
    _check_estimator(mean_estimator, temperature)
    _, h, w, c = heatmaps.shape
    flat = ops.reshape(heatmaps, (-1, h * w, c))
    wts = _weights(flat, mean_estimator, temperature)
    gx, gy = _grids(w, h)
    total = ops.sum(wts, axis=1)  # (B, C)
    norm = total + HEATMAP_EPSILON
    # moments of p = wts / norm; the second normalisation divides by Σp + ε
    mass = total / norm + HEATMAP_EPSILON
    mx = ops.sum(wts * gx, axis=1) / norm / mass
    my = ops.sum(wts * gy, axis=1) / norm / mass
    return ops.concatenate([ops.reshape(mx, (-1, c, 1)), ops.reshape(my, (-1, c, 1))], axis=-1)


def heatmap_peak(heatmaps):
    """Peak of the positive heatmap per channel ``(B, H, W, C)`` → ``(B, C)``: UGLLI's per-point score."""
    _, h, w, c = heatmaps.shape
    return ops.max(ops.relu(ops.reshape(heatmaps, (-1, h * w, c))), axis=1)


def cholesky_to_covariance(cholesky):
    """``(..., 3)`` Cholesky values ``(L00, L10, L11)`` → ``(..., 2, 2)`` covariances ``L Lᵀ``.

    Symmetric by construction; positive definite whenever ``L00, L11 ≠ 0`` (the CEN makes them ``ELU + 1 > 0``).
    That holds in exact arithmetic; float32 entries can only carry it while ``Σ``'s condition number stays well
    below ``1 / float32 eps`` (an ellipse axis ratio ``|L10| / L11`` under about 10³), far beyond what the GLL's
    ``det + 1e-5`` guard lets training reach.
    """
    a, b, c = ops.split(cholesky, [1, 2], axis=-1)
    s00 = a * a
    s01 = a * b
    s11 = b * b + c * c
    flat = ops.concatenate([s00, s01, s01, s11], axis=-1)
    return ops.reshape(flat, (*[-1 if d is None else d for d in cholesky.shape[:-1]], 2, 2))


@lmkzoo_export
class UGLLICodec(LandmarkCodec):
    """UGLLI targets (``encode``) and decode of the last hourglass (``call``).

    Args:
        num_points: K.
        input_size: ``(W, H)`` of the network input.
        heatmap_size: ``(Wh, Hh)``; default ``input_size / 4`` (the DU-Net stem's stride).
        mean_estimator: ``relu`` (UGLLI), ``softmax``, ``tau_softmax`` or ``direct`` (ablations).
        temperature: τ of ``tau_softmax`` (0.02 in the official code).

    Network outputs read: ``heatmaps`` ``(B, Hh, Wh, K)`` and ``cholesky`` ``(B, K, 3)`` of the last hourglass
    (and ``means`` ``(B, K, 2)``, heatmap index units, with ``direct``).
    Decode returns ``landmarks`` ``(B, K, 2)`` crop pixels, ``scores`` ``(B, K)`` (peak of the positive
    heatmap) and ``covariance`` ``(B, K, 2, 2)`` in crop pixels².
    """

    output_keys = ("heatmaps", "cholesky")

    def __init__(self, num_points, input_size=(256, 256), heatmap_size=None, mean_estimator: str = "relu",
                 temperature: float = 0.02, covariance_scale: float = 1.0, **kwargs):
        super().__init__(num_points=num_points, input_size=input_size, **kwargs)
        _check_estimator(mean_estimator, temperature)
        self.covariance_scale = check_covariance_scale(covariance_scale)
        w, h = self.input_size
        if heatmap_size is None:
            if w % 4 or h % 4:
                raise InvalidArgumentError(f"input size {self.input_size} must be a multiple of 4 (the stem's stride)")
            heatmap_size = (w // 4, h // 4)
        hw, hh = (heatmap_size, heatmap_size) if isinstance(heatmap_size, int) else tuple(heatmap_size)
        if hw < 1 or hh < 1 or w % hw or h % hh:
            raise InvalidArgumentError(f"heatmap size {(hw, hh)} must divide the input size {self.input_size}")
        self.heatmap_size = (int(hw), int(hh))
        self.stride = (w / hw, h / hh)
        self.mean_estimator = str(mean_estimator)
        self.temperature = float(temperature)
        sx, sy = self.stride
        # heatmap → crop pixels², times the calibration factor (applied in decode only: the loss sees the raw Σ)
        self._cov_scale = np.array([[sx * sx, sx * sy], [sx * sy, sy * sy]], np.float32) * self.covariance_scale

    # ------------------------------------------------------------------------------------------ encode (tf)
    def encode(self, landmarks, visible=None):
        """Targets: ``points`` ``(..., K, 2)`` in heatmap index units (``p / stride - 0.5``) and ``visible``
        ``(..., K)``. Works on one example or a batch."""
        import tensorflow as tf

        p = tf.convert_to_tensor(landmarks, tf.float32)
        scale = tf.constant([1.0 / self.stride[0], 1.0 / self.stride[1]], tf.float32)
        points = p * scale - 0.5
        vis = tf.ones(tf.shape(p)[:-1], tf.float32) if visible is None else tf.cast(visible, tf.float32)
        return {"points": points, "visible": vis}

    # ------------------------------------------------------------------------------------------ decode (keras.ops)
    def heatmap_to_crop(self, means):
        """Heatmap index units ``(..., 2)`` → crop pixels (``(μ + 0.5) · stride``)."""
        return (means + 0.5) * np.array(self.stride, np.float32)

    def call(self, outputs):
        heatmaps = outputs["heatmaps"]
        if self.mean_estimator == "direct":
            means = outputs["means"]
        else:
            means = spatial_mean(heatmaps, mean_estimator=self.mean_estimator, temperature=self.temperature)
        cov = cholesky_to_covariance(outputs["cholesky"]) * self._cov_scale
        return {"landmarks": self.heatmap_to_crop(means), "scores": heatmap_peak(heatmaps), "covariance": cov}

    def get_config(self):
        config = super().get_config()
        config.update({"heatmap_size": list(self.heatmap_size), "mean_estimator": self.mean_estimator,
                       "temperature": self.temperature, "covariance_scale": self.covariance_scale})
        return config
