"""MobileNetV2 (Sandler et al. 2018) in torchvision's layout (``features.N...``), with a width multiplier.

Names follow torchvision module paths with ``.`` → ``_``: ``features_0_0`` (stem conv), ``features_0_1`` (BN),
``features_{i}_conv_{...}`` for the inverted residual blocks, ``features_18_0/1`` for the last 1x1 conv.
Every stride-2 conv pads symmetrically (ZeroPadding2D + ``valid``), unlike keras.applications' (0, 1) pads.
"""

from __future__ import annotations

import keras

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.backbones.backbone import Backbone, conv_bn, make_divisible

__all__ = ["MobileNetV2Backbone"]

# (expansion t, channels c, repeats n, stride s) of the paper's Table 2
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _inverted_residual(x, out_ch, stride, expand, name):
    inp = int(x.shape[-1])
    hidden = int(round(inp * expand))
    y = x
    k = 0
    if expand != 1:
        y = conv_bn(y, hidden, 1, activation="relu6", name=(f"{name}_conv_0_0", f"{name}_conv_0_1"))
        k = 1
    y = conv_bn(y, hidden, 3, strides=stride, depthwise=True, activation="relu6", name=(f"{name}_conv_{k}_0", f"{name}_conv_{k}_1"))
    y = conv_bn(y, out_ch, 1, name=(f"{name}_conv_{k + 1}", f"{name}_conv_{k + 2}"))
    if stride == 1 and inp == out_ch:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


@lmkzoo_export
class MobileNetV2Backbone(Backbone):
    """MobileNetV2 features (no classifier).

    Args:
        width_multiplier: 0.25, 0.35, 0.5, 0.75, 1.0, ... (channels rounded to multiples of 8, torchvision rule).
        include_last_conv: keep the final 1x1 conv (``features.18``; 1280 channels, or ``1280 * width`` above
            1.0). PIPNet uses it; the heatmap models of Earp et al. take the 320·width-channel block output.
        last_conv_channels: override the final conv's width (torchvision keeps 1280 for every width <= 1).
    Pyramid: P1..P5 at strides 2..32 (P5 is the model output).
    """

    def __init__(self, width_multiplier: float = 1.0, include_last_conv: bool = True, last_conv_channels: int | None = None,
                 input_shape=(None, None, 3), **kwargs):
        if not 0 < width_multiplier <= 4:
            raise InvalidArgumentError(f"width_multiplier must be in (0, 4]; got {width_multiplier!r}")
        inputs = keras.Input(shape=tuple(input_shape), name="images")
        x = conv_bn(inputs, make_divisible(32 * width_multiplier), 3, strides=2, activation="relu6", name=("features_0_0", "features_0_1"))
        pyramid = {}
        idx, stride = 1, 2
        for t, c, n, s in _SETTINGS:
            out_ch = make_divisible(c * width_multiplier)
            for i in range(n):
                st = s if i == 0 else 1
                if st == 2:
                    pyramid[f"P{stride.bit_length() - 1}"] = x
                    stride *= 2
                x = _inverted_residual(x, out_ch, st, t, f"features_{idx}")
                idx += 1
        if include_last_conv:
            last = last_conv_channels or make_divisible(1280 * max(1.0, width_multiplier))
            x = conv_bn(x, last, 1, activation="relu6", name=(f"features_{idx}_0", f"features_{idx}_1"))
        pyramid["P5"] = x
        kwargs.setdefault("name", "mobilenetv2")
        self._finish(inputs, x, pyramid, **kwargs)
        self.width_multiplier = float(width_multiplier)
        self.include_last_conv = bool(include_last_conv)
        self.last_conv_channels = last_conv_channels
        self.input_shape_ = tuple(input_shape)

    def get_config(self):
        return {
            "width_multiplier": self.width_multiplier,
            "include_last_conv": self.include_last_conv,
            "last_conv_channels": self.last_conv_channels,
            "input_shape": list(self.input_shape_),
            "name": self.name,
            "trainable": self.trainable,
        }
