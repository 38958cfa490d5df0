"""LaplaceKL codec (Robinson et al. 2019): soft-argmax heatmaps → points, Laplace scale → covariance.

* **Targets** (``encode``, TensorFlow): the landmarks in *heatmap pixels* (crop pixels times
  ``heatmap_size / input_size``; the RCN's heatmaps have the input's size, so the factor is 1) and the
  visibility. The losses (:mod:`lmkzoo.losses.laplacekl_loss`) compare distributions in heatmap pixels,
  where the target ``Laplace(s, 1)`` has a scale of one heatmap pixel (the paper's §3.1 and §4.2 measure
  scatter in pixels of the 80x80 maps).
* **Decode** (``call``, keras.ops): ``p = softmax(β h)`` per map, ``s̃ = Σ p(x)·x`` (Eq. 2) at pixel centres
  ``(i + 0.5, j + 0.5)`` (heatmap pixel ``i`` covers crop pixels ``[i·s, (i+1)·s)`` with
  ``s = input / heatmap``, so its centre is ``(i + 0.5)·s`` in crop pixels: lmkzoo's corner convention,
  exactly), ``scores`` = the peak probability of each map, and the Laplace scale per axis
  ``b_a = Σ p(x)|x_a − s̃_a|`` (the paper's ``τ`` with α = 1, kept per axis; ``τ = b_x + b_y``).
* **Covariance**: the prediction is the product of two independent 1-D ``Laplace(s̃_a, b_a)``, whose variance
  is ``2 b_a²``; so ``covariance = diag(2 b_x², 2 b_y²)`` in crop pixels² (after scaling ``b_a`` by ``s_a``).
  ``FaceLandmarks.uncertainty`` (``|Σ|^¼``) is then ``√2 · √(b_x b_y)``, the geometric-mean standard
  deviation; the Laplace scale itself is ``√(Σ_aa / 2)``, also returned directly as ``scale`` (crop pixels).
* ``render`` draws ``ω(s)``, the *real* heatmaps of the adversarial branch (§3.2): the target distribution
  (a discretised ``Laplace(s, b)`` per axis, or a Gaussian for GaussianKL) normalised over the grid, the
  same kind of probability map the generator outputs.

Decode ops: TRANSPOSE, RESHAPE, SOFTMAX (last axis), FULLY_CONNECTED, SUB, ABS, MUL, SUM, MAX, SPLIT,
CONCATENATION: no GATHER, no shrinking STRIDED_SLICE, no ONE_HOT.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.codecs.base import LandmarkCodec, check_covariance_scale
from lmkzoo.codecs.soft_argmax import grid_centers, soft_argmax, soft_argmax_scale, spatial_softmax
from lmkzoo.errors import InvalidArgumentError

__all__ = ["LaplaceCodec"]


def _size(v, name):
    w, h = (v, v) if isinstance(v, int) else tuple(v)
    if int(w) < 1 or int(h) < 1:
        raise InvalidArgumentError(f"{name} must be positive (width, height); got {v!r}")
    return int(w), int(h)


@lmkzoo_export
class LaplaceCodec(LandmarkCodec):
    """Soft-argmax decode with Laplace-scale uncertainty (see the module docstring).

    Args:
        num_points: K.
        input_size: ``(W, H)`` of the network input (crop pixels).
        heatmap_size: ``(W, H)`` of the heatmaps (default: the input size, as in the RCN).
        beta: softmax temperature β of Eq. 2 (the paper uses 1).
        target_scale: scale of the target distribution in heatmap pixels (``Laplace(s, 1)``: 1); used by
            :meth:`render` and by the family's losses.
    """

    output_keys = ("heatmaps",)

    def __init__(self, num_points, input_size=(80, 80), heatmap_size=None, beta: float = 1.0,
                 target_scale: float = 1.0, covariance_scale: float = 1.0, **kwargs):
        super().__init__(num_points=num_points, input_size=_size(input_size, "input_size"), **kwargs)
        self.heatmap_size = self.input_size if heatmap_size is None else _size(heatmap_size, "heatmap_size")
        if not float(beta) > 0:
            raise InvalidArgumentError(f"beta (the softmax temperature) must be > 0; got {beta!r}")
        if not float(target_scale) > 0:
            raise InvalidArgumentError(f"target_scale must be > 0 heatmap pixels; got {target_scale!r}")
        self.beta = float(beta)
        self.target_scale = float(target_scale)
        self.covariance_scale = check_covariance_scale(covariance_scale)
        (w, h), (hw, hh) = self.input_size, self.heatmap_size
        #: crop pixels per heatmap pixel, per axis
        self.stride = (w / hw, h / hh)

    # ------------------------------------------------------------------------------------------ encode (tf)
    def encode(self, landmarks, visible=None):
        """``{"landmarks": (..., K, 2) heatmap pixels, "visible": (..., K)}`` (one example or a batch)."""
        import tensorflow as tf

        p = tf.convert_to_tensor(landmarks, tf.float32)
        sx, sy = self.stride
        vis = tf.ones(tf.shape(p)[:-1], tf.float32) if visible is None else tf.cast(visible, tf.float32)
        return {"landmarks": p / tf.constant([sx, sy], tf.float32), "visible": vis}

    # ------------------------------------------------------------------------------------------ decode (keras.ops)
    def moments(self, heatmaps, alpha: int = 1):
        """``(probabilities (B, K, HW), mean (B, K, 2), scale (B, K, 2))`` in heatmap pixels."""
        hw, hh = self.heatmap_size
        centers = grid_centers(hw, hh)
        probs = spatial_softmax(heatmaps, self.beta)
        mean = soft_argmax(probs, centers)
        return probs, mean, soft_argmax_scale(probs, centers, mean, alpha)

    def call(self, outputs):
        heatmaps = outputs["heatmaps"] if isinstance(outputs, dict) else outputs
        probs, mean, scale = self.moments(heatmaps, alpha=1)
        s = ops.convert_to_tensor(np.array(self.stride, dtype="float32").reshape(1, 1, 2), dtype=mean.dtype)
        landmarks = mean * s
        # the calibration factor multiplies the covariance, so the Laplace scale b by its square root
        scale_px = scale * (s * np.float32(np.sqrt(self.covariance_scale)) if self.covariance_scale != 1.0 else s)
        var = 2.0 * scale_px * scale_px  # variance of Laplace(0, b) is 2 b² (MUL, not SQUARE, for the GPU delegate)
        vx, vy = ops.split(var, 2, axis=-1)
        zero = vx * 0.0
        cov = ops.reshape(ops.concatenate([vx, zero, zero, vy], axis=-1), (-1, self.num_points, 2, 2))
        return {"landmarks": landmarks, "scores": ops.max(probs, axis=-1), "covariance": cov, "scale": scale_px}

    # ------------------------------------------------------------------------------------------ ω(s)
    def render(self, landmarks, scale: float | None = None, distribution: str = "laplace"):
        """``ω(s)``: heatmap-pixel landmarks ``(B, K, 2)`` → ``(B, H, W, K)`` target probability maps.

        Each map is the separable ``Laplace(s, b)`` (``exp(−|x − s_x|/b − |y − s_y|/b)``) or Gaussian
        (``exp(−((x − s_x)² + (y − s_y)²) / 2b²)``) evaluated at pixel centres and normalised to sum 1.
        """
        if distribution not in ("laplace", "gaussian"):
            raise InvalidArgumentError(f"distribution must be 'laplace' or 'gaussian'; got {distribution!r}")
        b = float(self.target_scale if scale is None else scale)
        hw, hh = self.heatmap_size
        pts = ops.convert_to_tensor(landmarks)
        lx, ly = ops.split(pts, 2, axis=-1)  # (B, K, 1)

        def axis_weights(pos, n):
            c = ops.convert_to_tensor((np.arange(n, dtype="float32") + 0.5).reshape(1, 1, n), dtype=pos.dtype)
            d = c - pos
            logit = -ops.abs(d) / b if distribution == "laplace" else -ops.square(d) / (2.0 * b * b)
            logit = logit - ops.max(logit, axis=-1, keepdims=True)
            e = ops.exp(logit)
            return e / ops.sum(e, axis=-1, keepdims=True)

        wx, wy = axis_weights(lx, hw), axis_weights(ly, hh)  # (B, K, W), (B, K, H)
        return ops.einsum("bkh,bkw->bhwk", wy, wx)

    def get_config(self):
        config = super().get_config()
        config.update({"heatmap_size": list(self.heatmap_size), "beta": self.beta, "target_scale": self.target_scale,
                       "covariance_scale": self.covariance_scale})
        return config
