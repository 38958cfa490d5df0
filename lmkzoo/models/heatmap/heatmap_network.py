"""Heatmap network of Earp et al. 2021 ("Sub-pixel face landmarks using heatmaps and a bag of tricks").

Backbone (stride 32) → an upsampling head described by a strategy string over ``{S, D}`` → a 1x1 conv to
K heatmaps.

* ``D``: 4x4 transposed conv, stride 2 (``padding="same"``, i.e. PyTorch/MXNet padding 1), ``filters``
  outputs, no bias → BatchNorm → ReLU (SimpleBaseline's deconvolution block, paper §4.1).
* ``S``: 3x3 conv (``filters`` outputs, no bias) → BatchNorm → ReLU → pixel shuffle ×2, which leaves
  ``filters / 4`` channels at twice the resolution (paper §4.2, Shi et al. 2016).
* The heatmaps come from a 1x1 conv with bias after the last block, at heatmap resolution (paper §4.1:
  "finally a 2D convolution with 106 filters"). For pixel-shuffle endings the paper says the heatmap conv
  is added "before the final block"; read literally (a conv to 4K channels shuffled into K maps) SSSS would
  cost more than 0.7 GMACs, while a 1x1 conv after the last block reproduces the paper's SSSS 0.56 and
  every other row of Table 3 within 1%, so that is the placement used here.

Every block doubles the resolution, so the heatmaps have stride ``32 / 2**len(strategy)`` (192 → 96 for
the four-block baseline, 192 → 48 for the final three-block SDD models).

MobileNetV2 features (the configuration decided from Table 3): the paper's "MobileNetV2_0.25 ... 3.50 GFLOPS,
18.26 MB" for DDDD only follows when the deconvolutions read **320 channels at 6x6** (192 input). Width
0.25 scales the last inverted-residual block to 80 channels (torchvision, Keras and GluonCV rules alike),
and torchvision / Keras / GluonCV keep a 1280-channel final 1x1 conv for every width <= 1. Compared on all
11 strategies of Table 3 (MACs, float32 MiB; :mod:`lmkzoo.flops`):

==================================================  =====================  =====================
features feeding the head (MobileNetV2-0.25)        GMACs vs paper         MiB vs paper
==================================================  =====================  =====================
80 ch (last block output, no final conv)            -5.2% .. -0.7%         -51% .. -23%
1280 ch (torchvision / Keras / GluonCV final conv)  +2.4% .. +23%          +58% .. +155%
320 ch (final 1x1 conv scaled with the width)       -0.9% .. +0.5%         -15% .. +4%
==================================================  =====================  =====================

(ranges over the 11 rows; the 320-channel configuration also keeps both orderings of the table; the
remaining size gap is a near-constant +0.13 M / +0.25 M parameters per D-first / S-first row that none of
the configurations tried explains). So lmkzoo keeps MobileNetV2's final 1x1 conv with ``make_divisible(1280 · width)``
channels (TF-slim's depth-multiplier rule: 320 at width 0.25, 640 at 0.5, 1280 at 1.0), i.e.
``MobileNetV2Backbone(width, include_last_conv=True, last_conv_channels=make_divisible(1280 * width))``;
see :func:`paper_backbone_args`. ResNet-18/50 feed their layer4 output (512 / 2048 channels at stride 32).
"""

from __future__ import annotations

import keras

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.backbones import scaled_last_conv_args
from lmkzoo.models.backbones.backbone import BN_EPSILON, BN_MOMENTUM
from lmkzoo.models.layers import PixelShuffle, SubPixelConv2DTranspose
from lmkzoo.models.network import LandmarkNetwork

__all__ = ["HeatmapNetwork", "parse_strategy", "paper_backbone_args", "BACKBONE_STRIDE"]

BACKBONE_STRIDE = 32
_MAX_BLOCKS = 5  # 32 / 2**5 = 1: heatmaps at input resolution


def parse_strategy(strategy) -> str:
    """Validate an upsampling strategy (``"DDDD"``, ``"SDD"``, ...); returns it upper-cased."""
    if not isinstance(strategy, str) or not strategy:
        raise InvalidArgumentError(f"strategy must be a non-empty string over {{S, D}}; got {strategy!r}")
    s = strategy.upper()
    bad = sorted(set(s) - {"S", "D"})
    if bad:
        raise InvalidArgumentError(f"strategy {strategy!r} has letters {bad}; allowed: S (pixel shuffle), D (deconvolution)")
    if len(s) > _MAX_BLOCKS:
        raise InvalidArgumentError(
            f"strategy {strategy!r} has {len(s)} upsampling blocks; at most {_MAX_BLOCKS} fit a stride-32 backbone"
        )
    return s


def heatmap_stride(strategy) -> int:
    """Input pixels per heatmap pixel for a strategy on a stride-32 backbone."""
    return BACKBONE_STRIDE // 2 ** len(parse_strategy(strategy))


#: backbone arguments that give the features Earp et al. use (see the module docstring): MobileNetV2 keeps its
#: final 1x1 conv with ``make_divisible(1280 · width)`` channels; other backbones unchanged
paper_backbone_args = scaled_last_conv_args


def _head_init():
    return keras.initializers.RandomNormal(stddev=0.001)


@lmkzoo_export
class HeatmapNetwork(LandmarkNetwork):
    """Earp et al.'s heatmap network: backbone → ``S``/``D`` upsampling blocks → 1x1 conv to K heatmaps.

    Output: ``{"heatmaps": (B, H / s, W / s, K)}`` with ``s = 32 / 2**len(strategy)``.

    Args:
        backbone: a stride-32 :class:`~lmkzoo.models.backbones.Backbone` whose input is the crop size.
        codec: a :class:`~lmkzoo.codecs.HeatmapCodec` (K, input size and heatmap stride are read from it).
        strategy: upsampling blocks in order, e.g. ``"DDDD"`` (baseline), ``"SDD"`` (final models).
        filters: output channels of every block's conv / deconv (256 baseline, 128 in the final models);
            must be divisible by 4 when the strategy has pixel-shuffle blocks.
    Layer names: ``up{i}_deconv`` / ``up{i}_conv``, ``up{i}_bn``, ``up{i}_relu``, ``up{i}_shuffle``,
    ``heatmap_conv``. Head convs are initialised N(0, 0.001) (SimpleBaseline), biases 0.
    """

    def __init__(self, backbone, codec, strategy: str = "DDDD", filters: int = 256, **kwargs):
        strategy = parse_strategy(strategy)
        try:
            ok = not isinstance(filters, bool) and int(filters) == filters and int(filters) >= 4
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidArgumentError(f"filters must be an integer >= 4; got {filters!r}")
        filters = int(filters)
        if "S" in strategy and filters % 4:
            raise InvalidArgumentError(f"pixel-shuffle blocks need filters divisible by 4; got {filters}")
        if backbone.stride != BACKBONE_STRIDE:
            raise InvalidArgumentError(f"the heatmap head needs a stride-32 backbone; got stride {backbone.stride}")
        stride = BACKBONE_STRIDE // 2 ** len(strategy)
        if codec.stride != stride:
            raise InvalidArgumentError(
                f"strategy {strategy!r} makes heatmaps at stride {stride}, but the codec has stride {codec.stride}"
            )
        w, h = codec.input_size
        if w % BACKBONE_STRIDE or h % BACKBONE_STRIDE:
            raise InvalidArgumentError(f"input size {codec.input_size} must be a multiple of {BACKBONE_STRIDE}")
        inputs = keras.Input(shape=(h, w, 3), name="images")
        x = backbone(inputs)
        bn = dict(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
        for i, block in enumerate(strategy):
            if block == "D":
                x = SubPixelConv2DTranspose(filters, use_bias=False, kernel_initializer=_head_init(), name=f"up{i}_deconv")(x)
            else:
                x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=_head_init(),
                                        name=f"up{i}_conv")(x)
            x = keras.layers.BatchNormalization(**bn, name=f"up{i}_bn")(x)
            x = keras.layers.ReLU(name=f"up{i}_relu")(x)
            if block == "S":
                x = PixelShuffle(2, name=f"up{i}_shuffle")(x)
        heatmaps = keras.layers.Conv2D(codec.num_points, 1, kernel_initializer=_head_init(), bias_initializer="zeros",
                                       name="heatmap_conv")(x)
        kwargs.setdefault("name", "heatmap")
        self._finish(inputs, {"heatmaps": heatmaps}, codec=codec, **kwargs)
        self.backbone = backbone
        self.strategy = strategy
        self.filters = filters

    #: the paper's feature layer (MobileNetV2's final 1x1 conv at 1280·width channels)
    preset_backbone_args = staticmethod(paper_backbone_args)

    def get_config(self):
        return {
            **self._base_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "strategy": self.strategy,
            "filters": self.filters,
        }
