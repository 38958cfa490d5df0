"""UGLLI's Gaussian log-likelihood loss (paper §3.2, Eq. 3; docs/reference_facts.md §B; LUVLi's gaussian_loss.py)."""

from __future__ import annotations

from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.codecs.uglli_codec import MEAN_ESTIMATORS, cholesky_to_covariance, spatial_mean
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError
from lmkzoo.losses.base import StructuredLoss

__all__ = ["GaussianLogLikelihood", "gaussian_nll"]

SUPERVISIONS = ("all", "last")
CRITERIA = ("gll", "mse")


def gaussian_nll(means, cholesky, targets, epsilon: float = 1e-5):
    """Per-landmark negative Gaussian log-likelihood (without the constant ``log 2π``).

    ``½ log(|Σ| + ε) + ½ (x − μ)ᵀ Σ⁻¹ (x − μ)`` with ``Σ = L Lᵀ`` and ``Σ⁻¹ = adj(Σ) / (|Σ| + ε)``, exactly as
    the official code. ``means``, ``targets`` ``(..., 2)``; ``cholesky`` ``(..., 3)``; returns ``(...)``.

    The ½ in front of both terms follows the official LUVLi code (merlresearch/LUVLi loss/gaussian_loss.py,
    docs/reference_facts.md §B), the true negative log-density of a 2-D Gaussian up to ``log 2π``. The paper's
    Eq. 2 as printed, ``L_ij = log|Σ_ij| + (p_j − μ_ij)ᵀ Σ_ij⁻¹ (p_j − μ_ij)``, has no ½: it is exactly twice this
    value (apart from the ε guards), so it has the same minimiser and ratio of terms, but its gradients are
    twice ours; the paper's learning rates (1e-4, 2e-5) were tuned on the official code, i.e. on this form.
    """
    cov = cholesky_to_covariance(cholesky)
    s00, s01 = cov[..., 0, 0], cov[..., 0, 1]
    s10, s11 = cov[..., 1, 0], cov[..., 1, 1]
    det = s00 * s11 - s01 * s10 + epsilon
    d = targets - means
    dx, dy = d[..., 0], d[..., 1]
    # dᵀ adj(Σ) d with adj(Σ) = [[s11, -s01], [-s10, s00]]
    maha = (dx * dx * s11 - dx * dy * s01 - dy * dx * s10 + dy * dy * s00) / det
    return 0.5 * ops.log(det) + 0.5 * maha


@lmkzoo_export
class GaussianLogLikelihood(StructuredLoss):
    """UGLLI's loss: ``Σ_i λ_i · mean_j L_ij`` over hourglasses ``i`` and landmarks ``j``, per example.

    ``L_ij`` is :func:`gaussian_nll` of the ground truth under ``N(μ_ij, Σ_ij)``: ``μ_ij`` from hourglass
    ``i``'s heatmap (the codec's mean estimator) and ``Σ_ij`` from the shared CEN. Everything is in heatmap
    pixel-index units, as in the official code (targets from :meth:`UGLLICodec.encode`).

    Args:
        stack_weights: ``λ_i`` per hourglass (default all 1, the paper's choice).
        supervision: ``all`` (every hourglass) or ``last`` (Table 3 ablation: only the final one).
        criterion: ``gll`` or ``mse`` (Table 3 ablation: ``½‖x − μ‖²``, the GLL with ``Σ = I`` up to a
            constant; the CEN then gets no gradient).
        mean_estimator, temperature: as the codec's (``relu`` | ``softmax`` | ``tau_softmax`` | ``direct``;
            ``direct`` reads the CEN-regressed ``stack_means``).
        epsilon: the determinant guard (1e-5).

    Invisible landmarks (``visible = 0``) add nothing; the landmark mean still divides by ``K`` (the official
    code uses every landmark). ``y_pred`` needs ``stack_heatmaps`` ``(B, Hh, Wh, S·K)`` (or ``stack_means``)
    and ``stack_cholesky`` ``(B, S, K, 3)``; ``y_true`` ``points`` ``(B, K, 2)`` and ``visible`` ``(B, K)``.
    """

    def __init__(self, stack_weights=None, supervision: str = "all", criterion: str = "gll",
                 mean_estimator: str = "relu", temperature: float = 0.02, epsilon: float = 1e-5,
                 name="gaussian_log_likelihood", **kwargs):
        super().__init__(name=name, **kwargs)
        if supervision not in SUPERVISIONS:
            raise InvalidArgumentError(f"supervision must be one of {SUPERVISIONS}; got {supervision!r}")
        if criterion not in CRITERIA:
            raise InvalidArgumentError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
        if mean_estimator not in MEAN_ESTIMATORS:
            raise InvalidArgumentError(f"mean_estimator must be one of {MEAN_ESTIMATORS}; got {mean_estimator!r}")
        if stack_weights is not None:
            stack_weights = [float(v) for v in stack_weights]
            if not stack_weights or any(v < 0 for v in stack_weights):
                raise InvalidArgumentError(f"stack_weights must be a non-empty list of values >= 0; got {stack_weights!r}")
        if not float(epsilon) > 0:
            raise InvalidArgumentError(f"epsilon must be > 0; got {epsilon!r}")
        self.stack_weights = stack_weights
        self.supervision = supervision
        self.criterion = criterion
        self.mean_estimator = mean_estimator
        self.temperature = float(temperature)
        self.epsilon = float(epsilon)

    def weights_for(self, num_stacks: int) -> list[float]:
        """``λ_i`` for ``num_stacks`` hourglasses after the supervision switch."""
        if self.stack_weights is not None and len(self.stack_weights) != num_stacks:
            raise ShapeMismatchError(f"stack_weights has {len(self.stack_weights)} values but the network has "
                                     f"{num_stacks} hourglasses")
        lam = list(self.stack_weights) if self.stack_weights is not None else [1.0] * num_stacks
        if self.supervision == "last":
            lam = [0.0] * (num_stacks - 1) + [lam[-1]]
        return lam

    def stack_means(self, y_pred):
        """``(B, S, K, 2)`` means of every hourglass, in heatmap index units."""
        chol = y_pred["stack_cholesky"]
        s, k = chol.shape[1], chol.shape[2]
        if self.mean_estimator == "direct":
            if "stack_means" not in y_pred:
                raise InvalidArgumentError("mean_estimator='direct' needs a network built with the direct estimator "
                                           "(its outputs have no 'stack_means')")
            return y_pred["stack_means"]
        hm = y_pred["stack_heatmaps"]
        if hm.shape[-1] != s * k:
            raise ShapeMismatchError(f"stack_heatmaps has {hm.shape[-1]} channels; expected {s} x {k}")
        mu = spatial_mean(hm, mean_estimator=self.mean_estimator, temperature=self.temperature)  # (B, S·K, 2)
        return ops.reshape(mu, (-1, s, k, 2))

    def call(self, y_true, y_pred):
        chol = y_pred["stack_cholesky"]
        dtype = chol.dtype
        s, k = chol.shape[1], chol.shape[2]
        mu = self.stack_means(y_pred)
        target = ops.expand_dims(ops.cast(y_true["points"], dtype), 1)  # (B, 1, K, 2)
        vis = ops.expand_dims(ops.cast(y_true["visible"], dtype), 1)  # (B, 1, K)
        # an invisible point's target may be NaN / inf: replace it before the loss (0 · NaN is NaN, in the
        # value and in the gradient), then mask with where
        target = ops.where(ops.expand_dims(vis > 0, -1), target, ops.zeros_like(target))
        if self.criterion == "gll":
            per_point = gaussian_nll(mu, chol, target, self.epsilon)
        else:
            per_point = 0.5 * ops.sum(ops.square(target - mu), axis=-1)
        per_point = ops.where(vis > 0, per_point * vis, ops.zeros_like(per_point))
        per_stack = ops.sum(per_point, axis=-1) / float(k)  # (B, S)
        lam = ops.convert_to_tensor(self.weights_for(s), dtype=dtype)
        return ops.sum(per_stack * lam, axis=-1)

    def get_config(self):
        return {**super().get_config(), "stack_weights": self.stack_weights, "supervision": self.supervision,
                "criterion": self.criterion, "mean_estimator": self.mean_estimator, "temperature": self.temperature,
                "epsilon": self.epsilon}
