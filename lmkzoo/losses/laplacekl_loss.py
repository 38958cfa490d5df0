"""LaplaceKL family losses (Robinson et al. 2019, §3.1): soft-argmax L2, LaplaceKL and GaussianKL.

All three read the raw heatmaps ``y_pred["heatmaps"]`` ``(B, H, W, K)`` (or the tensor itself) and the
codec's targets ``y_true = {"landmarks" (B, K, 2) heatmap pixels, "visible" (B, K)}`` (or a ``(B, K, 2)``
tensor), form ``p = softmax(β h)``, the soft-argmax ``s̃`` (Eq. 2) and the per-axis scale ``τ_a`` with
the shared functions of :mod:`lmkzoo.models.layers.soft_argmax`, and return the per-example loss ``(B,)``:
the mean of the per-landmark loss over the visible landmarks.

* :class:`SoftArgmaxL2` (the baseline, Eq. 1): ``‖s̃ − s‖₂`` (Euclidean distance in heatmap pixels).
* :class:`LaplaceKL` (Eq. 3 with Laplace): per axis ``KL(Laplace(s̃_a, b_a) ‖ Laplace(s_a, b₀))`` with
  ``b_a = Σ p|x_a − s̃_a|`` and ``b₀ = target_scale`` (1 in the paper), in closed form
  ``log(b₀/b) + |Δ|/b₀ + (b/b₀)·exp(−|Δ|/b) − 1`` (``Δ = s̃_a − s_a``), summed over the two axes: the KL
  between the two products of independent 1-D Laplace distributions.
* :class:`GaussianKL` (α = 2): per axis ``KL(N(s̃_a, v_a) ‖ N(s_a, σ₀²))`` with ``v_a = Σ p (x_a − s̃_a)²``,
  ``½(log(σ₀²/v) + (v + Δ²)/σ₀² − 1)``, summed over the axes.

``epsilon`` (1e-6 pixels, or pixels² for GaussianKL) is added to the predicted scale so that a map that
collapses onto one pixel gives a large but finite loss.
"""

from __future__ import annotations

from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.codecs.soft_argmax import grid_centers, soft_argmax, soft_argmax_scale, spatial_softmax
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.losses.base import StructuredLoss

__all__ = ["SoftArgmaxL2", "LaplaceKL", "GaussianKL", "laplace_kl_divergence", "gaussian_kl_divergence"]


def laplace_kl_divergence(mu1, b1, mu2, b2):
    """Elementwise ``KL(Laplace(mu1, b1) ‖ Laplace(mu2, b2))``."""
    d = ops.abs(mu1 - mu2)
    return ops.log(b2 / b1) + d / b2 + (b1 / b2) * ops.exp(-d / b1) - 1.0


def gaussian_kl_divergence(mu1, var1, mu2, var2):
    """Elementwise ``KL(N(mu1, var1) ‖ N(mu2, var2))`` (variances, not standard deviations)."""
    return 0.5 * (ops.log(var2 / var1) + (var1 + ops.square(mu1 - mu2)) / var2 - 1.0)


class _SoftArgmaxLoss(StructuredLoss):
    """Base: soft-argmax moments of the predicted heatmaps, masked mean over visible landmarks."""

    #: order of the scale τ (1: mean absolute deviation, 2: variance); None: the loss does not use it
    alpha: int | None = None
    #: which target distribution ω(s) the adversarial branch renders for this loss
    target_distribution = "laplace"

    def __init__(self, beta: float = 1.0, target_scale: float = 1.0, epsilon: float = 1e-6, name=None, **kwargs):
        super().__init__(name=name or self.default_name, **kwargs)
        if not float(beta) > 0:
            raise InvalidArgumentError(f"beta (the softmax temperature) must be > 0; got {beta!r}")
        if not float(target_scale) > 0:
            raise InvalidArgumentError(f"target_scale must be > 0 heatmap pixels; got {target_scale!r}")
        if not float(epsilon) >= 0:
            raise InvalidArgumentError(f"epsilon must be >= 0; got {epsilon!r}")
        self.beta = float(beta)
        self.target_scale = float(target_scale)
        self.epsilon = float(epsilon)

    def per_landmark(self, mean, scale, target):
        """``(B, K)`` loss from the predicted ``mean``, ``scale`` and the target points (heatmap pixels)."""
        raise NotImplementedError

    def call(self, y_true, y_pred):
        heatmaps = y_pred["heatmaps"] if isinstance(y_pred, dict) else y_pred
        heatmaps = ops.convert_to_tensor(heatmaps)
        dtype = heatmaps.dtype
        if isinstance(y_true, dict):
            target = ops.cast(y_true["landmarks"], dtype)
            vis = y_true.get("visible")
        else:
            target, vis = ops.cast(y_true, dtype), None
        if vis is not None:
            vis = ops.cast(vis, dtype)
            # an invisible point's target may be NaN / inf: replace it before the loss (masking the loss alone
            # would still give NaN, and 0 · NaN gradients are NaN too)
            target = ops.where(ops.expand_dims(vis > 0, -1), target, ops.zeros_like(target))
        _, h, w, k = heatmaps.shape
        centers = grid_centers(w, h)
        probs = spatial_softmax(heatmaps, self.beta)
        mean = soft_argmax(probs, centers)
        scale = None if self.alpha is None else soft_argmax_scale(probs, centers, mean, self.alpha)
        loss = self.per_landmark(mean, scale, target)  # (B, K)
        if vis is None:
            return ops.mean(loss, axis=-1)
        loss = ops.where(vis > 0, loss * vis, ops.zeros_like(loss))
        return ops.sum(loss, axis=-1) / ops.maximum(ops.sum(vis, axis=-1), 1.0)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "target_scale": self.target_scale, "epsilon": self.epsilon}


@lmkzoo_export
class SoftArgmaxL2(_SoftArgmaxLoss):
    """The soft-argmax baseline (Eq. 1): Euclidean distance ``‖s̃ − s‖₂`` per landmark (heatmap pixels).

    ``target_scale`` only sets the spread of the real heatmaps ω(s) in adversarial training.
    """

    default_name = "softargmax_l2"

    def per_landmark(self, mean, scale, target):
        # epsilon² under the root keeps the gradient finite at a perfect prediction
        return ops.sqrt(ops.sum(ops.square(mean - target), axis=-1) + self.epsilon**2)


@lmkzoo_export
class LaplaceKL(_SoftArgmaxLoss):
    """``KL(Laplace(s̃, τ) ‖ Laplace(s, target_scale))`` per landmark, closed form, summed over x and y."""

    default_name = "laplace_kl"
    alpha = 1

    def per_landmark(self, mean, scale, target):
        kl = laplace_kl_divergence(mean, scale + self.epsilon, target, self.target_scale)
        return ops.sum(kl, axis=-1)


@lmkzoo_export
class GaussianKL(_SoftArgmaxLoss):
    """``KL(N(s̃, τ) ‖ N(s, target_scale²))`` per landmark (τ the per-axis variance), summed over x and y."""

    default_name = "gaussian_kl"
    alpha = 2
    target_distribution = "gaussian"

    def per_landmark(self, mean, scale, target):
        kl = gaussian_kl_divergence(mean, scale + self.epsilon, target, self.target_scale**2)
        return ops.sum(kl, axis=-1)
