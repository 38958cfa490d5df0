"""``CoordinateLoss``: a point loss (L1, L2, smooth-L1, Wing, smooth-Wing) over the regression codec's targets.

LOTR (Watchareeruetai et al. 2021) Eq. 5: ``loss(Z, Ẑ) = Σ_i Σ_j g(z_ij − ẑ_ij)`` over the N landmarks and both
coordinates, with ``g`` one of the losses of :mod:`lmkzoo.losses.regression_losses` (§4.7 compares them;
smooth-Wing with ``t = 0.01, w = 10, ε = 2`` is the recipe's, §4.3).

Units: the network regresses coordinates as fractions of the crop, while Wing's thresholds (``w = 10``,
``ε = 2``) are pixel sizes (Feng et al. 2018 work in pixels); ``scale = (W, H)`` (the family passes the crop
size) turns the differences into crop pixels before ``g``. Invisible points (``visible = 0``) add nothing.
"""

from __future__ import annotations

from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.losses.base import StructuredLoss
from lmkzoo.losses.regression_losses import L1, L2, SmoothL1, SmoothWing, Wing

__all__ = ["CoordinateLoss", "POINT_LOSSES"]

#: recipe name → point loss class
POINT_LOSSES = {"l1": L1, "l2": L2, "smooth_l1": SmoothL1, "wing": Wing, "smooth_wing": SmoothWing}
_REDUCTIONS = ("sum", "mean")


@lmkzoo_export
class CoordinateLoss(StructuredLoss):
    """``g`` summed over coordinates and visible landmarks, per example.

    ``y_true``: ``{"coordinates" (B, K, 2), "visible" (B, K)}`` (:meth:`RegressionCodec.encode`); ``y_pred``:
    ``{"coordinates" (B, K, 2)}``. Returns ``(B,)``: ``Σ_k visible_k Σ_j g(scale_j · |ẑ_kj − z_kj|)`` (Eq. 5),
    or that sum divided by K with ``point_reduction="mean"``.

    Args:
        point_loss: ``smooth_wing`` (default), ``wing``, ``l1``, ``l2`` or ``smooth_l1``.
        scale: per-axis multiplier ``(sx, sy)`` of the differences (the crop size: pixels), or one number.
        point_reduction: ``sum`` (Eq. 5) or ``mean`` over the K landmarks.
        **point_args: the point loss' own arguments (``t``, ``w``, ``epsilon`` for smooth-Wing; ``w``,
            ``epsilon`` for Wing; ``beta`` for smooth-L1).
    """

    def __init__(self, point_loss: str = "smooth_wing", scale=(1.0, 1.0), point_reduction: str = "sum",
                 name="coordinate_loss", point_args=None, **kwargs):
        # point-loss arguments come as keywords (recipe style) or as ``point_args`` (config round trip)
        base = {k: kwargs.pop(k) for k in ("reduction", "dtype") if k in kwargs}
        args = dict(point_args or {})
        args.update(kwargs)
        super().__init__(name=name, **base)
        if point_loss not in POINT_LOSSES:
            raise InvalidArgumentError(f"point_loss must be one of {sorted(POINT_LOSSES)}; got {point_loss!r}")
        if point_reduction not in _REDUCTIONS:
            raise InvalidArgumentError(f"point_reduction must be one of {list(_REDUCTIONS)}; got {point_reduction!r}")
        sx, sy = (scale, scale) if isinstance(scale, (int, float)) else tuple(scale)
        if not (float(sx) > 0 and float(sy) > 0):
            raise InvalidArgumentError(f"scale must be positive; got {scale!r}")
        try:
            self.point = POINT_LOSSES[point_loss](**args)
        except TypeError as e:
            raise InvalidArgumentError(f"{point_loss}: bad arguments {sorted(args)} ({e})") from None
        self.point_loss = point_loss
        self.scale = (float(sx), float(sy))
        self.point_reduction = point_reduction
        self.point_args = args

    def call(self, y_true, y_pred):
        pred = ops.convert_to_tensor(y_pred["coordinates"])
        s = ops.convert_to_tensor([[list(self.scale)]], dtype=pred.dtype)  # (1, 1, 2)
        true = ops.cast(y_true["coordinates"], pred.dtype)
        vis = ops.cast(y_true["visible"], pred.dtype)
        # an invisible point's target may be NaN / inf: replace it before g (0 · NaN is NaN, value and gradient)
        true = ops.where(ops.expand_dims(vis > 0, -1), true, ops.zeros_like(true))
        per_point = self.point.call(true * s, pred * s)  # (B, K)
        total = ops.sum(ops.where(vis > 0, per_point * vis, ops.zeros_like(per_point)), axis=-1)
        return total if self.point_reduction == "sum" else total / float(per_point.shape[-1])

    def get_config(self):
        return {**super().get_config(), "point_loss": self.point_loss, "scale": list(self.scale),
                "point_reduction": self.point_reduction, "point_args": dict(self.point_args)}
