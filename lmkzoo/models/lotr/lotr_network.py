"""LOTR, the Localization Transformer (Watchareeruetai et al. 2021, arXiv 2109.10057), and its CNN + FFN baseline.

LOTR (§3.1, Table 1)::

    backbone (MobileNetV2-1.0 / ResNet-50, stride 32: 6x6 at 192 px)
    → 1x1 conv to ``reduce_channels`` (64 for LOTR-M, 256 for the "+" models) + BN + ReLU
    → optional upsampling: 4x4 stride-2 deconvolutions (``upsample_filters``: 128, 64 → 24x24 tokens) + BN + ReLU
    → tokens: a linear projection of each pixel to D (a 1x1 conv), reshaped to a (H·W, D) sequence
    → Transformer: L encoder layers and L decoder layers (L = 2), the learnable 2D positional encoding
      (row and column tables, standard-normal initialisation) added only to queries and keys (DETR style), N learnable
      landmark queries (N(0, 1e-4²)) as the decoder's input, dropout 0.1 → a final LayerNorm → dropout 0.1
    → prediction head (a position-wise FFN shared by the N tokens): 512 ReLU → 512 ReLU → 2, no activation.

Output ``{"coordinates": (B, N, 2)}``: the landmarks as fractions of the crop (``x / W``, ``y / H``;
:class:`~lmkzoo.codecs.RegressionCodec` scales them to crop pixels). Our layers use He initialisation
(``he_normal``; §4.3), biases 0.

**D, heads and FFN width** (the paper does not state them; chosen from Table 3's parameter counts). Counting
every weight, BatchNorm statistics included (as MXNet/Gluon do: the CNN + FFN rows then match Table 3 to the
printed digit), MobileNetV2-1.0 with its 1280-channel final conv ("a feature map of size 6x6x1280", §4.3) or
ResNet-50's layer4, plus the 1x1 conv, the upsampling and the prediction head, leave **0.170-0.173 M**
parameters for the Transformer (token projection, positional encoding, queries, layers) in all three LOTR
rows, for 36 tokens (LOTR-M) as for 576 (M+, R+). So:

* **D = 64**: the channel count that enters the Transformer in all three models (LOTR-M's 1x1 conv, the "+"
  models' last deconvolution; Table 1 lists no other width, §3.1 "D ≤ C");
* **FFN width 128** (2·D): with D = 64, two encoder and two decoder layers cost 167 k parameters at 128
  (256 would cost 234 k, 512 366 k: +2.4% / +7.0% on LOTR-M's total);
* **4 heads** (16 dimensions each; heads do not change the count; DETR uses 8 of 32 dimensions);
* the positional encoding is DETR's learned separable layout (a row and a column table of D/2), since the
  budget does not grow with the token grid (a full 576 x 64 table would add 35 k to the "+" models only).

=======================  ===========  ===========
model                    ours (M)     Table 3 (M)
=======================  ===========  ===========
LOTR-M (MobileNetV2)     2.816        2.81
LOTR-M+ (MobileNetV2)    3.720        3.71
LOTR-R+ (ResNet-50)      25.220       25.21
CNN + FFN (MobileNetV2)  3.892        3.89
CNN + FFN (ResNet-50)    25.244       25.24
=======================  ===========  ===========

(``count_params()``, tests/test_lotr.py prints and checks them.)

CNN + FFN (§4.6): the same backbone and 1x1 conv (64 channels, "to resemble the spatial dimension of the LOTR
models"), then the flattened 6x6x64 map through an FFN 512 ReLU → 512 ReLU → 2N; its size matches Table 3
(3.89 M / 25.24 M) only with the flattened map as the FFN input.
"""

from __future__ import annotations

import keras

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.backbones import scaled_last_conv_args
from lmkzoo.models.backbones.backbone import BN_EPSILON, BN_MOMENTUM
from lmkzoo.models.layers import SubPixelConv2DTranspose
from lmkzoo.models.lotr.transformer import (
    LAYER_NORM_EPSILON,
    LearnedEmbedding,
    PositionalEncoding2D,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
    check_rate,
)
from lmkzoo.models.network import LandmarkNetwork

__all__ = ["LOTRNetwork", "CNNFFNNetwork", "lotr_backbone_args", "BACKBONE_STRIDE"]

BACKBONE_STRIDE = 32
#: He initialisation (§4.3) for every layer LOTR adds to the backbone
KERNEL_INIT = "he_normal"


#: the paper's features: MobileNetV2 keeps its final 1x1 conv with ``make_divisible(1280 · width)`` channels
#: (1280 at width 1.0: "a feature map of size 6 × 6 × 1280", §4.3); other backbones unchanged
lotr_backbone_args = scaled_last_conv_args


def _positive_int(value, name):
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _int_list(values, name):
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise InvalidArgumentError(f"{name} must be a list of positive integers; got {values!r}")
    return [_positive_int(v, f"{name}[{i}]") for i, v in enumerate(values)]


def _check_backbone(backbone, codec):
    if backbone.stride != BACKBONE_STRIDE:
        raise InvalidArgumentError(f"LOTR needs a stride-32 backbone; got stride {backbone.stride}")
    w, h = codec.input_size
    if w % BACKBONE_STRIDE or h % BACKBONE_STRIDE:
        raise InvalidArgumentError(f"input size {codec.input_size} must be a multiple of {BACKBONE_STRIDE}")
    return w, h


def _feature_map(x, reduce_channels, upsample_filters):
    """1x1 conv + BN + ReLU, then each 4x4 stride-2 deconvolution + BN + ReLU (layer names ``reduce_*``, ``up{i}_*``)."""
    bn = dict(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
    x = keras.layers.Conv2D(reduce_channels, 1, use_bias=False, kernel_initializer=KERNEL_INIT, name="reduce_conv")(x)
    x = keras.layers.BatchNormalization(**bn, name="reduce_bn")(x)
    x = keras.layers.ReLU(name="reduce_relu")(x)
    for i, filters in enumerate(upsample_filters):
        x = SubPixelConv2DTranspose(filters, use_bias=False, kernel_initializer=KERNEL_INIT, name=f"up{i}_deconv")(x)
        x = keras.layers.BatchNormalization(**bn, name=f"up{i}_bn")(x)
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)
    return x


def _ffn_head(x, units, outputs, prefix):
    for i, u in enumerate(units):
        x = keras.layers.Dense(u, activation="relu", kernel_initializer=KERNEL_INIT, name=f"{prefix}_dense{i}")(x)
    return keras.layers.Dense(outputs, kernel_initializer=KERNEL_INIT, name=f"{prefix}_out")(x)


@lmkzoo_export
class LOTRNetwork(LandmarkNetwork):
    """LOTR: backbone → 1x1 conv [→ deconvolutions] → Transformer encoder/decoder → per-query FFN head.

    Output: ``{"coordinates": (B, N, 2)}``, landmark positions as fractions of the crop's width and height.

    Args:
        backbone: a stride-32 :class:`~lmkzoo.models.backbones.Backbone` whose input is the crop size.
        codec: a :class:`~lmkzoo.codecs.RegressionCodec` (N and the input size are read from it).
        reduce_channels: filters of the 1x1 conv after the backbone (Table 1: 64 for LOTR-M, 256 for M+ / R+).
        upsample_filters: filters of the 4x4 stride-2 deconvolutions, in order (Table 1: none, or [128, 64]).
        dim: Transformer width D (the token projection's output). Default 64 (module docstring).
        num_heads: attention heads (default 4).
        ffn_dim: hidden width of each Transformer layer's position-wise FFN (default 128 = 2D).
        num_encoder_layers, num_decoder_layers: L (Table 1: 2, 2; §4.8 studies 1-6).
        dropout: Transformer dropout and the dropout before the head (0.1, §4.3).
        head_dropout: the dropout before the head alone (``None``: ``dropout``, as the paper). Followed by the
            head's ReLU layers, inverted dropout does not keep their mean: ``E[relu(z + noise)] > relu(z)``, so a
            network that has not yet learned to ignore the noise predicts shifted points at inference
            (docs/training_300w.md: a coherent 12 px shift on 300-W after 21 short epochs); ``0`` removes it.
        head_units: hidden layers of the prediction head (Table 1: [512, 512], output 2).
        query_stddev: initialisation std of the landmark queries (1e-4, §4.3).
        pos_stddev: initialisation std of the positional encoding (1, "standard normal", §4.3).
        query_pos: also add the landmark queries to the queries and keys of every decoder attention (DETR's
            object queries, ``query_pos``); ``False`` feeds them only as the first decoder layer's input (§3.1).
    Layer names: ``reduce_conv/bn/relu``, ``up{i}_deconv/bn/relu``, ``token_projection``, ``tokens``,
    ``positional_encoding``, ``landmark_queries``, ``encoder{i}``, ``decoder{i}``, ``decoder_norm``,
    ``head_dropout``, ``head_dense{i}``, ``head_out``.
    """

    def __init__(self, backbone, codec, reduce_channels: int = 64, upsample_filters=(), dim: int = 64,
                 num_heads: int = 4, ffn_dim: int = 128, num_encoder_layers: int = 2, num_decoder_layers: int = 2,
                 dropout: float = 0.1, head_units=(512, 512), query_stddev: float = 1e-4, pos_stddev: float = 1.0,
                 query_pos: bool = False, head_dropout: float | None = None, **kwargs):
        if not isinstance(query_pos, bool):
            raise InvalidArgumentError(f"query_pos must be true or false; got {query_pos!r}")
        reduce_channels = _positive_int(reduce_channels, "reduce_channels")
        upsample_filters = _int_list(upsample_filters, "upsample_filters")
        head_units = _int_list(head_units, "head_units")
        dim, num_heads = _positive_int(dim, "dim"), _positive_int(num_heads, "num_heads")
        ffn_dim = _positive_int(ffn_dim, "ffn_dim")
        if dim % num_heads or dim % 2:
            raise InvalidArgumentError(f"dim ({dim}) must be even and divisible by num_heads ({num_heads})")
        num_encoder_layers = _positive_int(num_encoder_layers, "num_encoder_layers")
        num_decoder_layers = _positive_int(num_decoder_layers, "num_decoder_layers")
        if head_dropout is not None:
            check_rate(head_dropout, "head_dropout")
        w, h = _check_backbone(backbone, codec)
        fh, fw = h // BACKBONE_STRIDE * 2 ** len(upsample_filters), w // BACKBONE_STRIDE * 2 ** len(upsample_filters)
        n = codec.num_points

        inputs = keras.Input(shape=(h, w, 3), name="images")
        x = _feature_map(backbone(inputs), reduce_channels, upsample_filters)
        # the linear projection to D as a 1x1 conv on the map (DETR's input_proj), then the reshape to tokens: a
        # Dense on the 4-D map converts to a FULLY_CONNECTED with a 2-D (H·W, D) output, which LiteRT's GPU
        # accelerator then adds to the (1, H·W, D) positional encoding with silently wrong results
        x = keras.layers.Conv2D(dim, 1, kernel_initializer=KERNEL_INIT, name="token_projection")(x)
        memory = keras.layers.Reshape((fh * fw, dim), name="tokens")(x)
        pos = PositionalEncoding2D(fh, fw, dim, stddev=pos_stddev, name="positional_encoding")(memory)
        for i in range(num_encoder_layers):
            memory = TransformerEncoderLayer(dim, num_heads, ffn_dim, dropout, kernel_initializer=KERNEL_INIT,
                                             name=f"encoder{i}")(memory, pos=pos)
        queries = LearnedEmbedding(n, dim, stddev=query_stddev, batch_broadcast=True, name="landmark_queries")(memory)
        y = queries
        for i in range(num_decoder_layers):
            y = TransformerDecoderLayer(dim, num_heads, ffn_dim, dropout, kernel_initializer=KERNEL_INIT,
                                        name=f"decoder{i}")(y, memory, memory_pos=pos,
                                                            query_pos=queries if query_pos else None)
        y = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="decoder_norm")(y)
        head_rate = float(dropout if head_dropout is None else head_dropout)
        y = keras.layers.Dropout(head_rate, name="head_dropout")(y)
        coordinates = _ffn_head(y, head_units, 2, "head")
        kwargs.setdefault("name", "lotr")
        self._finish(inputs, {"coordinates": coordinates}, codec=codec, **kwargs)
        self.backbone = backbone
        self.reduce_channels = reduce_channels
        self.upsample_filters = upsample_filters
        self.dim, self.num_heads, self.ffn_dim = dim, num_heads, ffn_dim
        self.num_encoder_layers, self.num_decoder_layers = num_encoder_layers, num_decoder_layers
        self.dropout = float(dropout)
        self.head_units = head_units
        self.query_stddev, self.pos_stddev = float(query_stddev), float(pos_stddev)
        self.query_pos = query_pos
        self.head_dropout = None if head_dropout is None else float(head_dropout)
        #: (height, width) of the token grid
        self.token_grid = (fh, fw)

    #: the paper's feature layer (MobileNetV2 1.0's 1280-channel final conv, ResNet-50's layer4)
    preset_backbone_args = staticmethod(lotr_backbone_args)

    def get_config(self):
        return {
            **self._base_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "reduce_channels": self.reduce_channels,
            "upsample_filters": list(self.upsample_filters),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "ffn_dim": self.ffn_dim,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "dropout": self.dropout,
            "head_units": list(self.head_units),
            "query_stddev": self.query_stddev,
            "pos_stddev": self.pos_stddev,
            "query_pos": self.query_pos,
            "head_dropout": self.head_dropout,
        }


@lmkzoo_export
class CNNFFNNetwork(LandmarkNetwork):
    """LOTR's CNN + FFN baseline (§4.6): backbone → 1x1 conv (+ BN + ReLU) → flatten → FFN → 2N coordinates.

    Output: ``{"coordinates": (B, N, 2)}`` as fractions of the crop (as :class:`LOTRNetwork`).

    Args:
        backbone, codec: as :class:`LOTRNetwork`.
        reduce_channels: 1x1 conv filters (64, LOTR-M's width).
        head_units: hidden layers of the FFN ([512, 512], LOTR's prediction head).
        dropout: dropout before the FFN (0: the paper names none for the baseline).
    Layer names: ``reduce_conv/bn/relu``, ``flatten``, ``ffn_dense{i}``, ``ffn_out``, ``coordinates``.
    """

    def __init__(self, backbone, codec, reduce_channels: int = 64, head_units=(512, 512), dropout: float = 0.0, **kwargs):
        reduce_channels = _positive_int(reduce_channels, "reduce_channels")
        head_units = _int_list(head_units, "head_units")
        check_rate(dropout)
        w, h = _check_backbone(backbone, codec)
        fh, fw = h // BACKBONE_STRIDE, w // BACKBONE_STRIDE
        n = codec.num_points
        inputs = keras.Input(shape=(h, w, 3), name="images")
        x = _feature_map(backbone(inputs), reduce_channels, [])
        x = keras.layers.Reshape((fh * fw * reduce_channels,), name="flatten")(x)
        if dropout:
            x = keras.layers.Dropout(float(dropout), name="ffn_dropout")(x)
        x = _ffn_head(x, head_units, 2 * n, "ffn")
        coordinates = keras.layers.Reshape((n, 2), name="coordinates")(x)
        kwargs.setdefault("name", "cnn_ffn")
        self._finish(inputs, {"coordinates": coordinates}, codec=codec, **kwargs)
        self.backbone = backbone
        self.reduce_channels = reduce_channels
        self.head_units = head_units
        self.dropout = float(dropout)

    #: the paper's feature layer (MobileNetV2 1.0's 1280-channel final conv, ResNet-50's layer4)
    preset_backbone_args = staticmethod(lotr_backbone_args)

    def get_config(self):
        return {
            **self._base_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "reduce_channels": self.reduce_channels,
            "head_units": list(self.head_units),
            "dropout": self.dropout,
        }
