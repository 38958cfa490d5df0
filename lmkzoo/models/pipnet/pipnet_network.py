"""PIPNet (Jin et al. 2021; docs/reference_facts.md §A1): backbone → optional stride layers → five 1x1 heads."""

from __future__ import annotations

import keras

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
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
        stc_heads: add the self-training-with-curriculum score maps (paper §3.3, docs/reference_facts.md §A9): the
            *same* ``cls_layer`` applied to the feature map max-pooled 2x2 once (``scores_pool1``, 2x the
            network stride) and twice (``scores_pool2``, 4x), e.g. 4x4 and 2x2 beside the 8x8 ``scores`` at
            256 px and stride 32. They add no weights (an STC-trained network's weights load into the plain
            PIPNet of the same config) and only training reads them: the codec decodes the standard outputs.
    """

    def __init__(self, backbone, codec, extra_channels: int = 512, stc_heads: bool = False, **kwargs):
        w, h = codec.input_size
        k, c, stride = codec.num_points, codec.num_neighbors, codec.net_stride
        if backbone.stride != 32:
            raise InvalidArgumentError(f"PIPNet needs a stride-32 backbone; got stride {backbone.stride}")
        if stc_heads and min(codec.grid) < 4:
            raise InvalidArgumentError(f"stc_heads pool the {codec.grid[0]}x{codec.grid[1]} score grid twice and need a "
                                       f"grid of at least 4x4; got input {codec.input_size} at stride {stride}")
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

        # one cls_layer object: the STC heads call it again on pooled features (shared weights)
        cls_layer = keras.layers.Conv2D(k, 1, kernel_initializer=_head_init(), bias_initializer="zeros", name="cls_layer")
        outputs = {
            "scores": cls_layer(x),
            "offset_x": head(k, "x_layer"),
            "offset_y": head(k, "y_layer"),
            "neighbor_x": head(k * c, "nb_x_layer"),
            "neighbor_y": head(k * c, "nb_y_layer"),
        }
        if stc_heads:
            pooled = keras.layers.MaxPooling2D(2, 2, name="stc_pool1")(x)
            outputs["scores_pool1"] = cls_layer(pooled)
            outputs["scores_pool2"] = cls_layer(keras.layers.MaxPooling2D(2, 2, name="stc_pool2")(pooled))
        kwargs.setdefault("name", "pipnet")
        self._finish(inputs, outputs, codec=codec, **kwargs)
        self.backbone = backbone
        self.extra_channels = int(extra_channels)
        self.stc_heads = bool(stc_heads)

    def get_config(self):
        return {
            **self._base_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "extra_channels": self.extra_channels,
            **({"stc_heads": True} if self.stc_heads else {}),
        }
