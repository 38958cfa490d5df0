"""Coordinate-regression losses: L1, L2, smooth-L1, Wing and smooth-Wing, written with ``keras.ops``.

Each takes ``y_true`` and ``y_pred`` of shape ``(B, K, 2)`` (any leading shape ending in 2 works) and
returns the loss per landmark ``(B, K)``: ``g`` applied to each coordinate difference and summed over x
and y (LOTR Eq. 5 sums over landmarks too; Keras' default ``sum_over_batch_size`` reduction then averages
over batch and landmarks, which only rescales the loss). Pass the landmark visibility as ``sample_weight``
``(B, K)`` to leave invisible points out.

``scale`` multiplies the differences before ``g``: the Wing family is defined in pixels (w = 10), so a model
that regresses coordinates normalised to a 192-px crop uses ``scale=192``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError

__all__ = ["PointLoss", "L1", "L2", "SmoothL1", "Wing", "SmoothWing"]


class PointLoss(keras.losses.Loss):
    """Base class: ``sum over coordinates of g(scale * |y_pred - y_true|)`` per landmark."""

    def __init__(self, scale: float = 1.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name or self.__class__.__name__.lower(), reduction=reduction, dtype=dtype)
        if not scale > 0:
            raise InvalidArgumentError(f"scale must be > 0; got {scale!r}")
        self.scale = float(scale)

    def elementwise(self, x):
        """``g(x)`` for ``x = |difference| >= 0``."""
        raise NotImplementedError

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        x = ops.abs(y_pred - y_true) * self.scale
        return ops.sum(self.elementwise(x), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale})
        return config


@lmkzoo_export
class L1(PointLoss):
    """``g(x) = |x|``."""

    def elementwise(self, x):
        return x


@lmkzoo_export
class L2(PointLoss):
    """``g(x) = x² / 2`` (the LOTR paper's L2)."""

    def elementwise(self, x):
        return 0.5 * ops.square(x)


@lmkzoo_export
class SmoothL1(PointLoss):
    """Smooth-L1 (Girshick 2015): ``x²/(2β)`` below ``β``, ``|x| - β/2`` above (β = 1 in the LOTR paper)."""

    def __init__(self, beta: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not beta > 0:
            raise InvalidArgumentError(f"beta must be > 0; got {beta!r}")
        self.beta = float(beta)

    def elementwise(self, x):
        return ops.where(x < self.beta, 0.5 * ops.square(x) / self.beta, x - 0.5 * self.beta)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


@lmkzoo_export
class Wing(PointLoss):
    """Wing loss (Feng et al. 2018): ``w ln(1 + |x|/ε)`` below ``w``, ``|x| - c`` above, ``c = w - w ln(1 + w/ε)``.

    Its gradient jumps at ``|x| = w`` (from ``w/(ε+w)`` to 1) and at 0 (sign change); see :class:`SmoothWing`.
    """

    def __init__(self, w: float = 10.0, epsilon: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if not (w > 0 and epsilon > 0):
            raise InvalidArgumentError(f"w and epsilon must be > 0; got w={w!r}, epsilon={epsilon!r}")
        self.w = float(w)
        self.epsilon = float(epsilon)
        self.c = self.w - self.w * math.log1p(self.w / self.epsilon)

    def elementwise(self, x):
        return ops.where(x < self.w, self.w * ops.log1p(x / self.epsilon), x - self.c)

    def get_config(self):
        return {**super().get_config(), "w": self.w, "epsilon": self.epsilon}


@lmkzoo_export
class SmoothWing(PointLoss):
    """Smooth-Wing loss (LOTR, Watchareeruetai et al. 2021, §3.2); defaults ``t=0.01, w=10, ε=2``.

    .. math::
        g(x) = s x^2 \\ (|x| < t);\\quad (w+ε)\\ln(1 + |x|/ε) - c_2 \\ (t ≤ |x| ≤ w);\\quad |x| - c_1 - c_2 \\ (|x| > w)

    with ``s = (w+ε) / (2t(ε+t))`` and ``c1 = w - (w+ε) ln(1 + w/ε)`` as printed in the paper. With these the
    gradient is continuous at ``t`` (both sides give ``(w+ε)/(ε+t)``) and at ``w`` (both give 1), and the
    value is continuous at ``w``. The paper prints ``c2 = s t²``, which leaves a small jump in the *value*
    at ``t`` (``(w+ε)ln(1+t/ε) - 2st²``, 1.5e-4 with the defaults). We use
    ``c2 = (w+ε) ln(1 + t/ε) - s t²`` instead, which makes the value continuous at ``t`` too and changes no
    gradient (it is a constant offset of the outer two pieces).
    """

    def __init__(self, t: float = 0.01, w: float = 10.0, epsilon: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if not (0 < t < w):
            raise InvalidArgumentError(f"smooth-Wing needs 0 < t < w; got t={t!r}, w={w!r}")
        if not epsilon > 0:
            raise InvalidArgumentError(f"epsilon must be > 0; got {epsilon!r}")
        self.t, self.w, self.epsilon = float(t), float(w), float(epsilon)
        we = self.w + self.epsilon
        self.s = we / (2.0 * self.t * (self.epsilon + self.t))
        self.c1 = self.w - we * math.log1p(self.w / self.epsilon)
        self.c2 = we * math.log1p(self.t / self.epsilon) - self.s * self.t**2

    def elementwise(self, x):
        we = self.w + self.epsilon
        inner = self.s * ops.square(x)
        middle = we * ops.log1p(x / self.epsilon) - self.c2
        outer = x - self.c1 - self.c2
        return ops.where(x < self.t, inner, ops.where(x > self.w, outer, middle))

    def get_config(self):
        return {**super().get_config(), "t": self.t, "w": self.w, "epsilon": self.epsilon}
