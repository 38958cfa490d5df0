"""PIPNet's loss (paper Eq. 1-6; docs/reference_facts.md §A7)."""

from __future__ import annotations

from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.codecs.base import gather_cells, one_hot_cells
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.losses.base import StructuredLoss

__all__ = ["PIPLoss", "PIP_ALPHA"]

#: the paper's balancing coefficient α = β per network stride (§4.1.2)
PIP_ALPHA = {16: 0.02, 32: 0.1, 64: 0.125, 128: 0.25}


def masked_regression_errors(y_true, y_pred, one_hot, vis):
    """L1 errors at each landmark's ground-truth cell (``one_hot`` ``(B, HW, K)``): offsets ``(B, K)`` and
    neighbour offsets ``(B, K, C)``, weighted by visibility and zero where invisible. An invisible point's targets
    may be NaN / inf (from a NaN coordinate): they are zeroed before the L1 terms (0 · NaN is NaN in the value and
    in the gradient) and masked with ``where``."""
    dtype = one_hot.dtype
    hw, k = one_hot.shape[1], one_hot.shape[2]
    off = ops.cast(y_true["offsets"], dtype)  # (B, K, 2)
    off = ops.where(ops.expand_dims(vis > 0, -1), off, ops.zeros_like(off))
    nb = ops.cast(y_true["neighbor_offsets"], dtype)  # (B, K, C, 2)
    c = nb.shape[-2]
    px = gather_cells(ops.reshape(y_pred["offset_x"], (-1, hw, k)), one_hot)
    py = gather_cells(ops.reshape(y_pred["offset_y"], (-1, hw, k)), one_hot)
    pnx = gather_cells(ops.reshape(y_pred["neighbor_x"], (-1, hw, k, c)), one_hot)
    pny = gather_cells(ops.reshape(y_pred["neighbor_y"], (-1, hw, k, c)), one_hot)
    off_err = ops.abs(px - off[..., 0]) + ops.abs(py - off[..., 1])
    off_err = ops.where(vis > 0, off_err * vis, ops.zeros_like(off_err))
    nb_vis = ops.cast(y_true["neighbor_visible"], dtype)  # (B, K, C)
    nb = ops.where(ops.expand_dims(nb_vis > 0, -1), nb, ops.zeros_like(nb))
    nb_err = ops.abs(pnx - nb[..., 0]) + ops.abs(pny - nb[..., 1])
    nb_err = ops.where(nb_vis > 0, nb_err * nb_vis, ops.zeros_like(nb_err))
    return off_err, nb_err


@lmkzoo_export
class PIPLoss(StructuredLoss):
    """``cls_weight · MSE(scores, one-hot)`` + ``reg_weight · (L1(x) + L1(y) + L1(nb_x) + L1(nb_y))``.

    The score term averages over every cell and landmark (``K·H·W``); the four regression terms are taken
    only at each landmark's ground-truth cell and average over ``K`` (offsets) or ``K·C`` (neighbours).
    PIPNet's code uses ``cls_weight = 10, reg_weight = 1`` at stride 32, i.e. the paper's α = β = 0.1;
    with ``reg_weight=None`` the weight follows the paper's α for ``net_stride`` (``10 · α``).

    ``y_true`` is the codec's target dict (``cell``, ``offsets``, ``neighbor_offsets``, ``visible``);
    invisible landmarks contribute to no term (a neighbour vote counts only when both ends are visible). Returns the
    per-example loss ``(B,)``.
    """

    def __init__(self, cls_weight: float = 10.0, reg_weight: float | None = None, net_stride: int = 32,
                 name="pip_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if net_stride not in PIP_ALPHA:
            raise InvalidArgumentError(f"net_stride must be one of {sorted(PIP_ALPHA)}; got {net_stride!r}")
        self.cls_weight = float(cls_weight)
        self.net_stride = int(net_stride)
        self.reg_weight = float(cls_weight * PIP_ALPHA[net_stride] if reg_weight is None else reg_weight)

    @staticmethod
    def _map_sq(scores, cells, vis):
        """Per-example sum of squared errors of a score map ``(B, H, W, K)`` against the one-hot ``cells`` over
        the visible landmarks ``(B,)``, its element count ``H·W·K`` and the one-hot maps ``(B, HW, K)``."""
        _, gh, gw, k = scores.shape
        hw = gh * gw
        oh = one_hot_cells(ops.cast(cells, "int32"), hw, scores.dtype)
        s = ops.reshape(scores, (-1, hw, k))
        return ops.sum(ops.square(s - oh) * ops.expand_dims(vis, 1), axis=(1, 2)), float(hw * k), oh

    def call(self, y_true, y_pred):
        scores = y_pred["scores"]
        k = scores.shape[-1]
        vis = ops.cast(y_true["visible"], scores.dtype)  # (B, K)
        sq, n, oh = self._map_sq(scores, y_true["cell"], vis)
        cls = sq / n

        off_err, nb_err = masked_regression_errors(y_true, y_pred, oh, vis)
        l_off = ops.sum(off_err, axis=1) / float(k)
        l_nb = ops.sum(nb_err, axis=(1, 2)) / float(k * nb_err.shape[-1])
        return self.cls_weight * cls + self.reg_weight * (l_off + l_nb)

    def get_config(self):
        return {**super().get_config(), "cls_weight": self.cls_weight, "reg_weight": self.reg_weight,
                "net_stride": self.net_stride}
