"""The LaplaceKL generator: a 4-branch Recombinator Network (Robinson et al. 2019, Table 1 and §3.4).

Layers (full width; ``c = 64·width`` and ``d = 128·width`` channels, all convs stride 1, 'same' padding, with bias)::

    input 80x80x3
    E1..E4   3x3 conv (c) → LeakyReLU(0.2) → Dropout(0.2) → [skip] → 2x2 max-pool      80 → 40 → 20 → 10 → 5
    D4       1x1 conv (c) on the 5x5 bottleneck → LReLU → Dropout → bilinear 2x up → concat E4 skip (2c, 10x10)
    D_F      5x5 conv (d) → LReLU                                   (Table 1 lists no dropout after this one)
    D3..D1   1x1 conv (c) → LReLU → Dropout → bilinear 2x up → concat E3..E1 skip (2c) → 5x5 conv (d) → LReLU → Dropout
    1x1 conv (K) → LReLU → Dropout                                  80x80xK
    output   1x1 conv (K), no activation: the heatmap scores (β-softmax in the codec / losses)

Coarse-to-fine skips join the encoder (before each pool) to the decoder by concatenation, as in RCN
(Honari et al. 2016; docs/reference_facts.md §C). The 1x1 ``D`` convs run before the upsampling: a 1x1 conv and a
per-channel bilinear resize commute, so this is the same function as upsampling first, at a quarter of
the cost. (§3.4's text says the decoder convs *output* 64 of their 128 input channels; Table 1 lists 128
filters for the 5x5 ``D_F`` convs, and only 128 gives the paper's parameter count, so Table 1 is followed.
The text also says dropout follows all but the first and last activation, while Table 1 puts it after E1
as well: Table 1 is followed. Dropout is inactive at inference, so neither choice changes a prediction.)

**Parameter counts** (K = 68; ours → Table 3): width 1: 1,793,880 → 1.8724M (−4.2%); 1/2: 454,904 →
0.4781M (−4.9%); 1/4: 118,728 → 0.1281M (−7.3%); 1/8: 33,968 → 0.0389M (−12.7%); 1/16: 12,420 → 0.0174M
(−28.6%). Every layer scales with the width except the two K-channel layers at the end (the K→K output
conv, 4,692 parameters, is width-independent; the d→K conv scales linearly), which is why the relative
gap grows at small widths. Table 3 is matched almost exactly by *our count + 4,692 + 73,728·width² +
64·width*, i.e. one more width-independent K→K 1x1 conv and one more 3x3 conv from 2c to c channels (with
bias) that Table 1 does not list: the differences are then −36, −40, −56, +4 parameters at widths 1, 1/2,
1/4, 1/16, and +20 at 1/8 against the abstract's "0.0398" for the 1/8 model (printed there as MB, but
Table 3 gives that model 0.162 MB of storage, so it is the parameter count in millions; Table 3's 0.0389M
would leave +920: its digits look transposed). We build what Table 1 lists and report the gap.
"""

from __future__ import annotations

import keras

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.network import LandmarkNetwork

__all__ = ["RCN", "rcn_channels", "PAPER_PARAMETERS"]

#: Table 3: parameters (millions) per width factor
PAPER_PARAMETERS = {1 / 16: 0.0174, 1 / 8: 0.0389, 1 / 4: 0.1281, 1 / 2: 0.4781, 1.0: 1.8724}


def rcn_channels(filters: int, width: float) -> tuple[int, int]:
    """``(c, d)``: the encoder / 1x1 channels and the 5x5 fusion channels at a width factor."""
    return max(1, int(round(filters * width))), max(1, int(round(2 * filters * width)))


@lmkzoo_export
class RCN(LandmarkNetwork):
    """The 4-branch RCN generator of LaplaceKL: normalised crop ``(B, H, W, 3)`` → ``{"heatmaps": (B, H, W, K)}``.

    Args:
        codec: a :class:`~lmkzoo.codecs.LaplaceCodec` (K, input size and β come from it; its heatmap size
            must equal the input size, as in the paper's 80x80 → 80x80).
        width: channel factor (the paper's 1/16, 1/8, 1/4, 1/2, 1).
        filters: encoder channels at width 1 (64); the 5x5 fusion convs have twice as many.
        dropout: dropout rate (0.2); negative_slope: LeakyReLU slope (0.2).
    """

    def __init__(self, codec, width: float = 1.0, filters: int = 64, dropout: float = 0.2,
                 negative_slope: float = 0.2, **kwargs):
        w, h = codec.input_size
        if tuple(codec.heatmap_size) != (w, h):
            raise InvalidArgumentError(f"the RCN outputs heatmaps at its input size {codec.input_size}; the codec has "
                                       f"heatmap_size {codec.heatmap_size}")
        if w % 16 or h % 16:
            raise InvalidArgumentError(f"the RCN pools four times, so the input size must be a multiple of 16; got {codec.input_size}")
        if not float(width) > 0:
            raise InvalidArgumentError(f"width must be > 0 (the paper uses 1/16, 1/8, 1/4, 1/2, 1); got {width!r}")
        if int(filters) < 1:
            raise InvalidArgumentError(f"filters must be >= 1; got {filters!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise InvalidArgumentError(f"dropout must be in [0, 1); got {dropout!r}")
        k = codec.num_points
        c, d = rcn_channels(int(filters), float(width))
        L = keras.layers

        def act(x, name, drop=True):
            x = L.LeakyReLU(negative_slope=float(negative_slope), name=f"{name}_lrelu")(x)
            return L.Dropout(float(dropout), name=f"{name}_drop")(x) if drop else x

        inputs = keras.Input(shape=(h, w, 3), name="images")
        x, skips = inputs, []
        for i in range(1, 5):
            x = act(L.Conv2D(c, 3, padding="same", name=f"e{i}_conv")(x), f"e{i}")
            skips.append(x)
            x = L.MaxPooling2D(2, name=f"e{i}_pool")(x)
        for i in range(4, 0, -1):
            x = act(L.Conv2D(c, 1, name=f"d{i}_conv")(x), f"d{i}")
            x = L.UpSampling2D(2, interpolation="bilinear", name=f"d{i}_up")(x)
            x = L.Concatenate(name=f"d{i}_concat")([x, skips[i - 1]])
            x = act(L.Conv2D(d, 5, padding="same", name=f"d{i}_fuse")(x), f"d{i}_fuse", drop=i != 4)
        x = act(L.Conv2D(k, 1, name="heatmap_conv")(x), "heatmap")
        heatmaps = L.Conv2D(k, 1, name="heatmaps")(x)
        kwargs.setdefault("name", "rcn")
        self._finish(inputs, {"heatmaps": heatmaps}, codec=codec, **kwargs)
        self.width = float(width)
        self.filters = int(filters)
        self.dropout = float(dropout)
        self.negative_slope = float(negative_slope)

    def get_config(self):
        return {
            **self._base_config(),
            "width": self.width,
            "filters": self.filters,
            "dropout": self.dropout,
            "negative_slope": self.negative_slope,
        }
