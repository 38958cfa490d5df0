"""MobileNetV3-Large (Howard et al. 2019) features, torchvision-style layout, with a width multiplier.

Names: ``features_0_0/1`` stem (3x3 s2, hard-swish), ``features_{i}_block_*`` for the 15 bottlenecks
(expand 1x1, depthwise kxk, optional squeeze-and-excitation ``_se_fc1/_se_fc2``, project 1x1), and
``features_16_0/1`` for the last 1x1 conv (960·width channels, hard-swish). BN eps 1e-5 as everywhere in
lmkzoo's backbones.
"""

from __future__ import annotations

import keras

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.backbones.backbone import Backbone, conv_bn, make_divisible

__all__ = ["MobileNetV3LargeBackbone"]

# kernel, expanded channels, output channels, squeeze-excite, activation, stride (paper Table 1)
_LARGE = (
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hard_silu", 2), (3, 200, 80, False, "hard_silu", 1), (3, 184, 80, False, "hard_silu", 1),
    (3, 184, 80, False, "hard_silu", 1), (3, 480, 112, True, "hard_silu", 1), (3, 672, 112, True, "hard_silu", 1),
    (5, 672, 160, True, "hard_silu", 2), (5, 960, 160, True, "hard_silu", 1), (5, 960, 160, True, "hard_silu", 1),
)


def _squeeze_excite(x, name):
    ch = int(x.shape[-1])
    sq = make_divisible(ch // 4, 8)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = keras.layers.Conv2D(sq, 1, name=f"{name}_fc1")(s)
    s = keras.layers.ReLU(name=f"{name}_relu")(s)
    s = keras.layers.Conv2D(ch, 1, name=f"{name}_fc2")(s)
    s = keras.layers.Activation("hard_sigmoid", name=f"{name}_hsig")(s)
    return keras.layers.Multiply(name=f"{name}_scale")([x, s])


def _bneck(x, k, exp, out, se, act, stride, name):
    inp = int(x.shape[-1])
    y = x
    if exp != inp:
        y = conv_bn(y, exp, 1, activation=act, name=(f"{name}_expand", f"{name}_expand_bn"))
    y = conv_bn(y, exp, k, strides=stride, depthwise=True, activation=act, name=(f"{name}_dw", f"{name}_dw_bn"))
    if se:
        y = _squeeze_excite(y, f"{name}_se")
    y = conv_bn(y, out, 1, name=(f"{name}_project", f"{name}_project_bn"))
    if stride == 1 and inp == out:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


@lmkzoo_export
class MobileNetV3LargeBackbone(Backbone):
    """MobileNetV3-Large features up to the last 1x1 conv (960 channels at width 1.0), stride 32.

    Pyramid: P1..P5 at strides 2..32.
    """

    def __init__(self, width_multiplier: float = 1.0, input_shape=(None, None, 3), **kwargs):
        if not 0 < width_multiplier <= 4:
            raise InvalidArgumentError(f"width_multiplier must be in (0, 4]; got {width_multiplier!r}")
        w = lambda c: make_divisible(c * width_multiplier)  # noqa: E731
        inputs = keras.Input(shape=tuple(input_shape), name="images")
        x = conv_bn(inputs, w(16), 3, strides=2, activation="hard_silu", name=("features_0_0", "features_0_1"))
        pyramid = {}
        stride = 2
        for i, (k, exp, out, se, act, s) in enumerate(_LARGE):
            if s == 2:
                pyramid[f"P{stride.bit_length() - 1}"] = x
                stride *= 2
            x = _bneck(x, k, w(exp), w(out), se, act, s, f"features_{i + 1}_block")
        x = conv_bn(x, w(960), 1, activation="hard_silu", name=("features_16_0", "features_16_1"))
        pyramid["P5"] = x
        kwargs.setdefault("name", "mobilenetv3_large")
        self._finish(inputs, x, pyramid, **kwargs)
        self.width_multiplier = float(width_multiplier)
        self.input_shape_ = tuple(input_shape)

    def get_config(self):
        return {"width_multiplier": self.width_multiplier, "input_shape": list(self.input_shape_), "name": self.name,
                "trainable": self.trainable}
