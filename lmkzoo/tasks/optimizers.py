"""Optimizers that reproduce the papers' PyTorch recipes.

PyTorch's ``torch.optim.Adam(params, lr, weight_decay=wd)`` implements weight decay as an L2 term *coupled*
to the gradient: ``g ← g + wd · θ`` before the moments are updated, so the decay is rescaled by Adam's
per-parameter step size. Keras' ``AdamW`` (and ``Adam(weight_decay=...)``) applies *decoupled* decay
instead (``θ ← θ − lr · wd · θ``, Loshchilov & Hutter). The two differ by orders of magnitude for small
gradients, so a recipe written as ``{name: adam, weight_decay: wd}`` (PyTorch ``Adam``) uses
:class:`AdamL2`; ``{name: adamw, ...}`` keeps Keras' decoupled ``AdamW``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError

__all__ = ["AdamL2"]


@lmkzoo_export
class AdamL2(keras.optimizers.Adam):
    """Adam with PyTorch-style (coupled, L2) weight decay: ``g ← g + weight_decay · θ``, then the Adam update.

    The same update as ``torch.optim.Adam(..., weight_decay=weight_decay)`` except for where epsilon sits:
    Keras divides by ``sqrt(v) + eps`` with the bias corrections folded into the step size, PyTorch by
    ``sqrt(v̂) + eps``, so Keras' ``epsilon`` equals PyTorch's ``eps · sqrt(1 − β₂ᵗ)`` (a difference only when
    ``sqrt(v̂)`` is near eps). Variables excluded with :meth:`exclude_from_weight_decay` get the plain Adam
    update.

    Args:
        learning_rate, beta_1, beta_2, epsilon, amsgrad, **kwargs: as ``keras.optimizers.Adam``.
        weight_decay: the L2 coefficient added to the gradient (PyTorch's ``weight_decay``), ``>= 0``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=0.0, name="adam_l2", **kwargs):
        try:
            wd = float(weight_decay) if weight_decay is not None else 0.0
        except (TypeError, ValueError):
            wd = float("nan")
        if not (math.isfinite(wd) and wd >= 0) or isinstance(weight_decay, bool):
            raise InvalidArgumentError(f"weight_decay must be a finite number >= 0; got {weight_decay!r}")
        # the base class stores weight_decay (get_config, exclude_from_weight_decay); _apply_weight_decay below
        # keeps it from also applying Keras' decoupled decay
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=wd, name=name, **kwargs)

    def _apply_weight_decay(self, variables):
        """No decoupled decay: the decay is in the gradient (:meth:`update_step`)."""
        return

    def update_step(self, gradient, variable, learning_rate):
        if self.weight_decay and self._use_weight_decay(variable):
            gradient = ops.add(ops.cast(gradient, variable.dtype),
                               ops.multiply(ops.cast(self.weight_decay, variable.dtype), variable))
        super().update_step(gradient, variable, learning_rate)
