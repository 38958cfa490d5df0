"""ResNet-18/34/50/101 in torchvision's layout, so torchvision / PIPNet checkpoints map one to one.

Layer names are torchvision's module paths with ``.`` → ``_`` (``layer2.0.downsample.0`` →
``layer2_0_downsample_0``). Convolutions have no bias, pad symmetrically (ZeroPadding2D + ``valid``), and
BatchNorm uses eps 1e-5. ResNet-50/101 are v1.5: the stride sits on the 3x3 conv of the bottleneck.
"""

from __future__ import annotations

import keras

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.backbones.backbone import Backbone, conv_bn

__all__ = ["ResNetBackbone"]

_DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}


def _basic_block(x, planes, stride, name):
    inp = int(x.shape[-1])
    shortcut = x
    y = conv_bn(x, planes, 3, strides=stride, activation="relu", name=(f"{name}_conv1", f"{name}_bn1"))
    y = conv_bn(y, planes, 3, name=(f"{name}_conv2", f"{name}_bn2"))
    if stride != 1 or inp != planes:
        shortcut = conv_bn(x, planes, 1, strides=stride, name=(f"{name}_downsample_0", f"{name}_downsample_1"))
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _bottleneck_block(x, planes, stride, name, expansion=4):
    inp = int(x.shape[-1])
    shortcut = x
    y = conv_bn(x, planes, 1, activation="relu", name=(f"{name}_conv1", f"{name}_bn1"))
    y = conv_bn(y, planes, 3, strides=stride, activation="relu", name=(f"{name}_conv2", f"{name}_bn2"))
    y = conv_bn(y, planes * expansion, 1, name=(f"{name}_conv3", f"{name}_bn3"))
    if stride != 1 or inp != planes * expansion:
        shortcut = conv_bn(x, planes * expansion, 1, strides=stride, name=(f"{name}_downsample_0", f"{name}_downsample_1"))
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


@lmkzoo_export
class ResNetBackbone(Backbone):
    """ResNet backbone (He et al. 2016) without average pooling and classifier.

    Args:
        depth: 18, 34, 50 or 101.
        width_multiplier: scales every channel count (1.0 is the published network; smaller values are for
            tiny tests and fast experiments; official checkpoints need 1.0).
        input_shape: ``(H, W, 3)``; ``None`` sizes are allowed.
    Pyramid: ``P1`` (stem, stride 2), ``P2``..``P5`` (layer1..layer4, strides 4..32).
    """

    def __init__(self, depth: int = 18, width_multiplier: float = 1.0, input_shape=(None, None, 3), **kwargs):
        if depth not in _DEPTHS:
            raise InvalidArgumentError(f"ResNet depth must be one of {sorted(_DEPTHS)}; got {depth!r}")
        if not 0 < width_multiplier <= 4:
            raise InvalidArgumentError(f"width_multiplier must be in (0, 4]; got {width_multiplier!r}")
        kind, blocks = _DEPTHS[depth]
        block = _basic_block if kind == "basic" else _bottleneck_block
        ch = lambda c: max(8, int(round(c * width_multiplier)))  # noqa: E731

        inputs = keras.Input(shape=tuple(input_shape), name="images")
        x = conv_bn(inputs, ch(64), 7, strides=2, activation="relu", name=("conv1", "bn1"))
        pyramid = {"P1": x}
        # torch pads the max pool with -inf; after a ReLU, zero padding gives the same result
        x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
        for i, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512))):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                x = block(x, ch(planes), stride, f"layer{i + 1}_{j}")
            pyramid[f"P{i + 2}"] = x
        kwargs.setdefault("name", f"resnet{depth}")
        self._finish(inputs, x, pyramid, **kwargs)
        self.depth = depth
        self.width_multiplier = float(width_multiplier)
        self.input_shape_ = tuple(input_shape)

    def get_config(self):
        return {
            "depth": self.depth,
            "width_multiplier": self.width_multiplier,
            "input_shape": list(self.input_shape_),
            "name": self.name,
            "trainable": self.trainable,
        }
