"""``PixelShuffle``: sub-pixel upsampling (Shi et al. 2016), ``(H, W, C·r²) → (H·r, W·r, C)``."""

from __future__ import annotations

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError

__all__ = ["PixelShuffle"]


@lmkzoo_export
class PixelShuffle(keras.layers.Layer):
    """Rearrange channels into an ``r``-times larger map with ``keras.ops.depth_to_space`` (NHWC).

    Channel order is TensorFlow's ``depth_to_space`` ("DCR": output pixel ``(i·r + a, j·r + b)``, channel
    ``c`` reads input channel ``(a·r + b)·C + c``), which lowers to one TFLite ``DEPTH_TO_SPACE`` op (run by
    the GPU delegate). PyTorch's ``pixel_shuffle`` reads channel ``c·r² + a·r + b`` instead ("CRD"); a
    ported PyTorch checkpoint must permute the preceding conv's output channels accordingly.

    Args:
        block_size: the upsampling factor ``r`` (2 in Earp et al.).
    """

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(block_size) != block_size or int(block_size) < 2:
            raise InvalidArgumentError(f"block_size must be an integer >= 2; got {block_size!r}")
        self.block_size = int(block_size)

    def call(self, x):
        return ops.depth_to_space(x, self.block_size, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.block_size
        if c is not None and c % (r * r):
            raise InvalidArgumentError(f"PixelShuffle({r}) needs channels divisible by {r * r}; got {c}")
        return (b, None if h is None else h * r, None if w is None else w * r, None if c is None else c // (r * r))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}
