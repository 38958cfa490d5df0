"""``SubPixelConv2DTranspose``: a 4x4 stride-2 ``same`` transposed convolution computed without TRANSPOSE_CONV.

A transposed convolution with kernel 4, stride 2 and ``same`` padding writes each output phase
``(2m + a, 2n + b)`` from a 2x2 window of the input: rows ``(m - 1, m)`` with kernel rows ``(3, 1)`` for
``a = 0`` and rows ``(m, m + 1)`` with kernel rows ``(2, 0)`` for ``a = 1`` (columns alike). So it equals
four 2x2 ``valid`` convolutions of the input padded on the phase's side, concatenated and rearranged with
``depth_to_space``: the same multiply-adds, the same weights (the kernel keeps ``Conv2DTranspose``'s
``(4, 4, out, in)`` layout, so checkpoints of PyTorch ``ConvTranspose2d(k=4, s=2, p=1)`` map one to one), and
only ops every TFLite backend runs (PAD, CONV_2D, CONCATENATION, DEPTH_TO_SPACE). LiteRT's GPU accelerator
rejects the TRANSPOSE_CONV the converter emits once it fuses the following BatchNorm and ReLU into it
("TRANSPOSE_CONV: Max version supported: 3. Requested version 4").
"""

from __future__ import annotations

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError

__all__ = ["SubPixelConv2DTranspose"]

# kernel taps of each output phase: phase 0 reads input offsets (-1, 0), phase 1 reads (0, +1)
_TAPS = {0: (3, 1), 1: (2, 0)}


@lmkzoo_export
class SubPixelConv2DTranspose(keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same")`` (NHWC) as four 2x2 convolutions
    and a depth-to-space; numerically the same layer, with the same weights and config."""

    def __init__(self, filters, kernel_size=4, strides=2, padding="same", **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        if tuple(self.kernel_size) != (4, 4) or tuple(self.strides) != (2, 2) or self.padding != "same":
            raise InvalidArgumentError(
                "SubPixelConv2DTranspose implements kernel 4, stride 2, padding 'same' only; got kernel "
                f"{self.kernel_size}, strides {self.strides}, padding {self.padding!r}"
            )
        if self.data_format != "channels_last" or tuple(self.dilation_rate) != (1, 1) or self.output_padding is not None:
            raise InvalidArgumentError("SubPixelConv2DTranspose supports channels_last, no dilation and no output_padding")

    def call(self, inputs):
        kernel = ops.transpose(self.kernel, (0, 1, 3, 2))  # (4, 4, in, out): a forward-conv layout
        phases = []
        for a in (0, 1):
            rows = ops.stack([kernel[_TAPS[a][0]], kernel[_TAPS[a][1]]])  # (2, 4, in, out)
            for b in (0, 1):
                k = ops.stack([rows[:, _TAPS[b][0]], rows[:, _TAPS[b][1]]], axis=1)  # (2, 2, in, out)
                x = ops.pad(inputs, [[0, 0], [1 - a, a], [1 - b, b], [0, 0]])
                phases.append(ops.conv(x, k, strides=1, padding="valid", data_format="channels_last"))
        y = ops.depth_to_space(ops.concatenate(phases, axis=-1), 2, data_format="channels_last")
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y
