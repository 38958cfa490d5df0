"""``SoftArgmax2D``: the soft-argmax of :mod:`lmkzoo.codecs.soft_argmax` (Robinson et al. 2019, Eq. 2, and the
heatmap scale of §3.1) as a Keras layer. The maths lives with the codecs, which decode with it."""

from __future__ import annotations

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.codecs.soft_argmax import grid_centers, soft_argmax, soft_argmax_scale, spatial_softmax
from lmkzoo.errors import InvalidArgumentError

__all__ = ["SoftArgmax2D"]


@lmkzoo_export
class SoftArgmax2D(keras.layers.Layer):
    """Differentiable soft-argmax with temperature ``beta`` and the heatmap scale of order ``alpha``.

    ``call(heatmaps (B, H, W, K))`` returns ``{"landmarks" (B, K, 2), "scale" (B, K, 2), "peak" (B, K),
    "probabilities" (B, K, H·W)}`` in heatmap pixels (corner convention); ``peak`` is the largest
    probability of each map (the landmark's confidence score).
    """

    def __init__(self, beta: float = 1.0, alpha: int = 1, **kwargs):
        super().__init__(**kwargs)
        if not float(beta) > 0:
            raise InvalidArgumentError(f"beta (the softmax temperature) must be > 0; got {beta!r}")
        if alpha not in (1, 2):
            raise InvalidArgumentError(f"alpha must be 1 (Laplace) or 2 (Gaussian); got {alpha!r}")
        self.beta = float(beta)
        self.alpha = int(alpha)

    def call(self, heatmaps):
        _, h, w, _ = heatmaps.shape
        centers = grid_centers(w, h)
        probs = spatial_softmax(heatmaps, self.beta)
        mean = soft_argmax(probs, centers)
        scale = soft_argmax_scale(probs, centers, mean, self.alpha)
        return {"landmarks": mean, "scale": scale, "peak": ops.max(probs, axis=-1), "probabilities": probs}

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "alpha": self.alpha}
