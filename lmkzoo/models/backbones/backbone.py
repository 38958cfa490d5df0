"""Base class of lmkzoo backbones: a functional ``keras.Model`` whose feature maps are exposed by stride."""

from __future__ import annotations

import keras

from lmkzoo.errors import InvalidArgumentError

__all__ = ["Backbone", "make_divisible", "conv_bn", "BN_EPSILON", "BN_MOMENTUM"]

# PyTorch BatchNorm defaults, so torchvision / official checkpoints map one to one
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # keras momentum = 1 - torch momentum (0.1)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without going more than 10% down (MobileNet rule)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def conv_bn(x, filters, kernel_size, *, strides=1, groups=1, activation=None, name, use_bias=False, depthwise=False):
    """PyTorch-style conv: symmetric zero padding ``k // 2`` then a ``valid`` conv, BN (eps 1e-5), activation.

    Layer names are ``{name}_conv`` / ``{name}_bn`` unless ``name`` is a ``(conv_name, bn_name)`` pair.
    """
    conv_name, bn_name = name if isinstance(name, tuple) else (f"{name}_conv", f"{name}_bn")
    pad = kernel_size // 2
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{conv_name}_pad")(x)
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel_size, strides=strides, padding="valid", use_bias=use_bias, name=conv_name)(x)
    else:
        x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="valid", use_bias=use_bias, groups=groups, name=conv_name)(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=bn_name)(x)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{bn_name}_{activation}")(x)
    return x


class Backbone(keras.Model):
    """A functional backbone. Subclasses build the graph in ``__init__`` and call :meth:`_finish`.

    Attributes:
        pyramid_outputs: ``{"P1": ..., "P5": ...}``, the feature map at stride ``2**n`` (keras-hub style).
        out_channels: channels of the final feature map.
    """

    def _finish(self, inputs, outputs, pyramid, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.pyramid_outputs = pyramid

    @property
    def out_channels(self) -> int:
        return int(self.output.shape[-1])

    @property
    def stride(self) -> int:
        return 2 ** max(int(k[1:]) for k in self.pyramid_outputs)

    def feature_model(self, levels=("P5",)) -> keras.Model:
        """A model from the backbone input to the requested pyramid levels (list output)."""
        missing = [lv for lv in levels if lv not in self.pyramid_outputs]
        if missing:
            raise InvalidArgumentError(f"unknown pyramid levels {missing}; available {sorted(self.pyramid_outputs)}")
        return keras.Model(self.inputs, [self.pyramid_outputs[lv] for lv in levels])

    @classmethod
    def from_config(cls, config):
        return cls(**config)
