"""PIPNet's self-training-with-curriculum loss (paper §3.3; docs/reference_facts.md §A9, lib/functions_gssl.py).

Every example carries a sample type (the codec target ``task``): 0 = ``std``, 1 = ``cls1``, 2 = ``cls2``,
3 = ``cls3``. Each loss term is masked by the type:

======  =====================================================  ================
type    active terms                                           masked out
======  =====================================================  ================
std     score map 1 (the PIP grid), x / y offsets, neighbours  maps 2 and 3
cls1    score map 1 only                                       everything else
cls2    score map 2 only (``scores_pool1``, 2x the stride)     everything else
cls3    score map 3 only (``scores_pool2``, 4x the stride)     everything else
======  =====================================================  ================

The paper's tasks map to the types as Task 1 = ``cls3`` (the coarsest, easiest grid), Task 2 = ``cls2``,
Task 3 = ``std``; labelled data is always ``std``.
"""

from __future__ import annotations

from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.losses.pipnet_loss import PIPLoss, masked_regression_errors

__all__ = ["STCLoss", "STC_TASKS"]

#: sample types of self-training with curriculum (the codec's ``task`` values)
STC_TASKS = {"std": 0, "cls1": 1, "cls2": 2, "cls3": 3}


@lmkzoo_export
class STCLoss(PIPLoss):
    """``cls_weight · masked MSE(three score maps)`` + ``reg_weight · masked L1(x, y, nb_x, nb_y)``.

    As in PIPNet's GSSL code, each term is a *sum* over its active elements divided by the batch's count of
    active elements (the mask sum; no division when it is 0): the MSE runs over the concatenation of the three
    masked maps (an active ``std`` / ``cls1`` example counts ``K·H·W`` cells, ``cls2`` ``K·H/2·W/2``, ``cls3``
    ``K·H/4·W/4``), the L1 terms over the ``std`` examples' ground-truth cells (``K`` per example for x and
    for y, ``K·C`` for the neighbours). A batch of only ``std`` examples (or targets without ``task``) gives
    exactly :class:`~lmkzoo.losses.PIPLoss`. Invisible landmarks add nothing (their counts stay in the
    denominators, as in ``PIPLoss``).

    ``y_true``: the codec's target dict with ``task`` and ``cell_pool1`` / ``cell_pool2``
    (``PIPNetCodec.encode(..., task=)``); ``y_pred``: a PIPNet's outputs with ``stc_heads``
    (``scores_pool1`` / ``scores_pool2``). Returns per-example values ``(B,)`` whose mean is the batch loss.
    """

    def __init__(self, cls_weight: float = 10.0, reg_weight: float | None = None, net_stride: int = 32,
                 name="stc_loss", **kwargs):
        super().__init__(cls_weight, reg_weight, net_stride, name=name, **kwargs)

    def call(self, y_true, y_pred):
        scores = y_pred["scores"]
        dtype = scores.dtype
        k = scores.shape[-1]
        vis = ops.cast(y_true["visible"], dtype)  # (B, K)
        typed = "task" in y_true
        if typed and not {"scores_pool1", "scores_pool2"} <= set(y_pred):
            raise InvalidArgumentError("typed (self-training) targets need a PIPNet built with stc_heads=True; the network "
                                       f"gives {sorted(y_pred)}")
        if typed:
            task = ops.reshape(ops.cast(y_true["task"], "int32"), (-1,))
        else:
            task = ops.zeros_like(ops.cast(y_true["cell"], "int32")[:, 0])
        batch = ops.cast(ops.shape(task)[0], dtype)
        std = ops.cast(ops.equal(task, 0), dtype)
        m1 = ops.cast(ops.less_equal(task, 1), dtype)  # std and cls1 supervise map 1

        sq1, n1, oh = self._map_sq(scores, y_true["cell"], vis)
        map_sum, map_count = m1 * sq1, m1 * n1
        if typed:
            for level, t in ((1, 2), (2, 3)):
                m = ops.cast(ops.equal(task, t), dtype)
                sq, n, _ = self._map_sq(y_pred[f"scores_pool{level}"], y_true[f"cell_pool{level}"], vis)
                map_sum, map_count = map_sum + m * sq, map_count + m * n

        off_err, nb_err = masked_regression_errors(y_true, y_pred, oh, vis)
        c = nb_err.shape[-1]
        off_sum = std * ops.sum(off_err, axis=1)
        nb_sum = std * ops.sum(nb_err, axis=(1, 2))

        def norm(total):  # the mask sum; a term with no active element is 0 (PIPNet skips the division)
            return ops.maximum(ops.sum(total), 1.0)

        n_std = ops.sum(std)
        per_example = (self.cls_weight * map_sum / norm(map_count)
                       + self.reg_weight * (off_sum / ops.maximum(n_std * k, 1.0) + nb_sum / ops.maximum(n_std * k * c, 1.0)))
        # per-example values whose batch mean is the masked-sum / mask-count loss
        return per_example * batch
