"""PIPNet network (Jin et al. 2021, REFERENCE_FACTS §A1): backbone → optional stride layers → five 1x1 heads."""

from __future__ import annotations

import keras

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.backbones import get_backbone
from lmkzoo.models.backbones.backbone import BN_EPSILON, BN_MOMENTUM
from lmkzoo.models.layers import SubPixelConv2DTranspose
from lmkzoo.models.network import LandmarkNetwork

__all__ = ["PIPNet"]


def _head_init():
    return keras.initializers.RandomNormal(stddev=0.001)


@lmkzoo_export
class PIPNet(LandmarkNetwork):
    """PIPNet: score, x/y offset and neighbour x/y maps from the backbone's last feature map.

    Network strides (paper §4.2.1): 32 is the backbone's own; 64 and 128 add ``layer5`` (and ``layer6``):
    3x3 stride-2 conv with bias (512 channels) + BN + ReLU; 16 adds ``deconv1``: 4x4 stride-2 transposed
    conv without bias (512 channels) + BN + ReLU (computed as :class:`SubPixelConv2DTranspose`, same weights,
    so that its TFLite export runs on GPU delegates). Heads are five parallel 1x1 convs with bias, initialised
    N(0, 0.001) / 0: ``cls_layer`` (K), ``x_layer``, ``y_layer`` (K), ``nb_x_layer``, ``nb_y_layer`` (K·C),
    named as in PIPNet's state_dict. Outputs (NHWC): ``scores``, ``offset_x``, ``offset_y``,
    ``neighbor_x``, ``neighbor_y`` (channel ``i·C + j``: landmark i's j-th neighbour).

    Args:
        backbone: a :class:`~lmkzoo.models.backbones.Backbone` (its input shape must be the crop size).
        codec: a :class:`~lmkzoo.codecs.PIPNetCodec` (K, C, stride and input size are read from it).
        extra_channels: channels of the stride layers (512 in PIPNet).
    """

    def __init__(self, backbone, codec, extra_channels: int = 512, **kwargs):
        w, h = codec.input_size
        k, c, stride = codec.num_points, codec.num_neighbors, codec.net_stride
        if backbone.stride != 32:
            raise InvalidArgumentError(f"PIPNet needs a stride-32 backbone; got stride {backbone.stride}")
        inputs = keras.Input(shape=(h, w, 3), name="images")
        x = backbone(inputs)
        bn = dict(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
        if stride == 16:
            x = SubPixelConv2DTranspose(extra_channels, use_bias=False, kernel_initializer=_head_init(), name="deconv1")(x)
            x = keras.layers.BatchNormalization(**bn, name="bn_deconv1")(x)
            x = keras.layers.ReLU(name="relu_deconv1")(x)
        for i in range({32: 0, 16: 0, 64: 1, 128: 2}[stride]):
            n = 5 + i
            x = keras.layers.ZeroPadding2D(1, name=f"layer{n}_pad")(x)
            x = keras.layers.Conv2D(extra_channels, 3, strides=2, kernel_initializer=_head_init(), name=f"layer{n}")(x)
            x = keras.layers.BatchNormalization(**bn, name=f"bn{n}")(x)
            x = keras.layers.ReLU(name=f"relu{n}")(x)

        def head(ch, name):
            return keras.layers.Conv2D(ch, 1, kernel_initializer=_head_init(), bias_initializer="zeros", name=name)(x)

        outputs = {
            "scores": head(k, "cls_layer"),
            "offset_x": head(k, "x_layer"),
            "offset_y": head(k, "y_layer"),
            "neighbor_x": head(k * c, "nb_x_layer"),
            "neighbor_y": head(k * c, "nb_y_layer"),
        }
        kwargs.setdefault("name", "pipnet")
        self._finish(inputs, outputs, codec=codec, **kwargs)
        self.backbone = backbone
        self.extra_channels = int(extra_channels)

    @classmethod
    def from_preset_args(cls, *, backbone="resnet18", codec, backbone_args=None, **kwargs):
        """Build from a backbone name (zoo.yaml ``builder`` style)."""
        w, h = codec.input_size
        bb = get_backbone(backbone, input_shape=(h, w, 3), **(backbone_args or {}))
        return cls(backbone=bb, codec=codec, **kwargs)

    def get_config(self):
        return {
            **self._base_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "extra_channels": self.extra_channels,
        }
