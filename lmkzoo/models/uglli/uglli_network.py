"""UGLLI network (Kumar et al. 2019; docs/reference_facts.md §B): DU-Net (coupled U-Nets) + Cholesky Estimator Network.

Layout followed from the official model (merlresearch/LUVLi ``cu_net_prev_version_cholesky_common_for_HG``,
built on zhiqiangdon/CU-Net), with names that mirror its modules:

* stem ``features``: ``conv0`` 7x7 s2 p3 (no bias, 3 → C), ``norm0`` BN, ``relu0``, ``pool0`` 2x2 max pool:
  256 → 64.
* ``num_stacks`` U-Nets ("hourglasses"), each with ``num_blocks`` down blocks (max pool 2 after each:
  64 → 32 → 16 → 8 → 4), a neck block and ``num_blocks`` up blocks (nearest ×2 upsampling; the input is
  ``[upsampled, skip]``). Every block position owns, per stack ``i``, one dense layer (BN-ReLU-1x1 to
  ``neck_size · growth_rate``, BN-ReLU-3x3 to ``growth_rate``, no biases) and adapters (BN-ReLU-1x1 without
  bias, to C): ``ahead`` (and ``skip`` in down blocks). Order-``order`` coupling: a block position's dense
  layer also sees the dense outputs of the same position in the previous ``order`` stacks, concatenated in
  the official order ``[inputs, older outputs, this output]``.
* ``intermediate``: the input of stack ``i ≥ 1`` is a BN-ReLU-1x1 adapter over ``[output of stack i-1,
  inputs of the previous `order` stacks]`` (stack 0 takes the stem).
* heatmap head per stack (``linears[i]``): BN-ReLU-1x1 without bias, C → K, on the 64x64 output.
* CEN (``cholesky.fc_1``): ONE dense layer shared by all stacks, from the 4x4xC bottleneck (the down path
  after its last pool, before the neck) flattened in torch's C,H,W order (2048 values), to 3 values per
  landmark ``(L00, L10, L11)``; the diagonals go through ``ELU + 1`` (> 0). With the ``direct`` mean
  estimator (Table 3 ablation) it regresses 5 values, the last two the mean in heatmap index units.

Initialisation as the official code: convs ``U(±1/√(k²·in))``, BN ``γ ~ U(0, 1)``, ``β = 0``; the CEN keeps
torch's ``Linear`` default (weights and bias ``U(±1/√in)``). BN eps 1e-5, momentum 0.1 (torch).

Outputs (NHWC): ``heatmaps`` ``(B, Hh, Wh, K)`` and ``cholesky`` ``(B, K, 3)`` of the last stack (what the
codec decodes); ``stack_heatmaps`` ``(B, Hh, Wh, S·K)`` (channel ``s·K + k``: stack ``s``, landmark ``k``)
and ``stack_cholesky`` ``(B, S, K, 3)`` of every stack (what the loss reads); with ``direct`` also
``means`` ``(B, K, 2)`` and ``stack_means`` ``(B, S, K, 2)``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.backbones.backbone import BN_EPSILON, BN_MOMENTUM
from lmkzoo.models.network import LandmarkNetwork

__all__ = ["UGLLI", "CholeskyFactor", "NearestUpsampling"]


def _conv_init():
    # U(±1/√fan_in): VarianceScaling's uniform limit is √(3·scale/fan_in)
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def _bn(name):
    return keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, gamma_initializer=keras.initializers.RandomUniform(0.0, 1.0),
        name=name,
    )


def _bn_relu_conv(inputs, filters, kernel, name):
    """Concatenate → BN → ReLU → conv without bias (the official ``_EfficientDensenetBottleneck`` / heads)."""
    x = inputs[0] if len(inputs) == 1 else keras.layers.Concatenate(name=f"{name}_cat")(inputs)
    x = _bn(f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False, kernel_initializer=_conv_init(),
                               name=f"{name}_conv")(x)


@lmkzoo_export
class NearestUpsampling(keras.layers.Layer):
    """×``factor`` nearest-neighbour upsampling (torch ``nn.Upsample(scale_factor=2)``: output ``i`` copies input
    ``i // factor``) as one resize op. ``keras.layers.UpSampling2D`` repeats through 5-D tiles, which the
    TFLite GPU delegate does not run."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        _, h, w, _ = x.shape
        return ops.image.resize(x, (h * self.factor, w * self.factor), interpolation="nearest")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, h * self.factor, w * self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@lmkzoo_export
class CholeskyFactor(keras.layers.Layer):
    """CEN output ``(B, K·n)`` → ``(B, K, 3)`` Cholesky values with ``ELU + 1`` on the diagonals ``L00, L11``.

    ``n = 3`` (UGLLI) or ``5`` (direct-regression ablation: also returns the mean ``(B, K, 2)``).
    """

    def __init__(self, num_points: int, num_coefficients: int = 3, **kwargs):
        super().__init__(**kwargs)
        if num_coefficients not in (3, 5):
            raise InvalidArgumentError(f"num_coefficients must be 3 or 5; got {num_coefficients!r}")
        self.num_points = int(num_points)
        self.num_coefficients = int(num_coefficients)

    def call(self, x):
        x = ops.reshape(x, (-1, self.num_points, self.num_coefficients))
        parts = ops.split(x, [1, 2, 3], axis=-1) if self.num_coefficients == 5 else ops.split(x, [1, 2], axis=-1)
        a, b, c = parts[0], parts[1], parts[2]
        chol = ops.concatenate([ops.elu(a) + 1.0, b, ops.elu(c) + 1.0], axis=-1)
        if self.num_coefficients == 5:
            return chol, parts[3]
        return chol

    def compute_output_shape(self, input_shape):
        chol = (input_shape[0], self.num_points, 3)
        return (chol, (input_shape[0], self.num_points, 2)) if self.num_coefficients == 5 else chol

    def get_config(self):
        return {**super().get_config(), "num_points": self.num_points, "num_coefficients": self.num_coefficients}


class _DenseBlockPosition:
    """One block position of the coupled U-Nets (a down, neck or up block): builds its layers for stack ``i``
    and remembers the dense outputs of the previous ``order`` stacks (the official ``saved_features``)."""

    def __init__(self, name, out_channels, growth_rate, neck_size, order, skip):
        self.name, self.out_channels, self.growth_rate = name, out_channels, growth_rate
        self.neck_size, self.order, self.skip = neck_size, order, skip
        self.saved = []

    def __call__(self, inputs, i):
        name = f"{self.name}_{i}"
        x = list(inputs) + self.saved
        h = _bn_relu_conv(x, self.neck_size * self.growth_rate, 1, f"{name}_bottleneck")
        h = _bn(f"{name}_norm2")(h)
        h = keras.layers.ReLU(name=f"{name}_relu2")(h)
        out = keras.layers.Conv2D(self.growth_rate, 3, padding="same", use_bias=False, kernel_initializer=_conv_init(),
                                  name=f"{name}_conv2")(h)
        self.saved = (self.saved + [out])[-self.order:] if self.order else []
        x = x + [out]
        ahead = _bn_relu_conv(x, self.out_channels, 1, f"{name}_ahead")
        if self.skip:
            return ahead, _bn_relu_conv(x, self.out_channels, 1, f"{name}_skip")
        return ahead


@lmkzoo_export
class UGLLI(LandmarkNetwork):
    """UGLLI: coupled U-Nets producing per-stack heatmaps, plus the shared Cholesky Estimator Network.

    Args:
        codec: a :class:`~lmkzoo.codecs.UGLLICodec` (K, input size, heatmap size, mean estimator).
        num_stacks: U-Nets (8 in the paper's DU-Net).
        channels: feature channels C (128); the CEN input is ``C · (Hh / 2^num_blocks)²`` (2048 at 256 px).
        growth_rate, neck_size: dense layer widths (32, 4: bottleneck ``neck_size · growth_rate`` = 128).
        num_blocks: down / up blocks per U-Net (4: 64 → 4).
        order: coupling order (1: each block position also sees the previous stack's output).
    """

    def __init__(self, codec, num_stacks: int = 8, channels: int = 128, growth_rate: int = 32, neck_size: int = 4,
                 num_blocks: int = 4, order: int = 1, **kwargs):
        for key, value, lo in (("num_stacks", num_stacks, 1), ("channels", channels, 1), ("growth_rate", growth_rate, 1),
                               ("neck_size", neck_size, 1), ("num_blocks", num_blocks, 1), ("order", order, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise InvalidArgumentError(f"{key} must be an integer >= {lo}; got {value!r}")
        w, h = codec.input_size
        hw, hh = codec.heatmap_size
        if (w, h) != (4 * hw, 4 * hh):
            raise InvalidArgumentError(f"the DU-Net stem has stride 4: heatmap size {codec.heatmap_size} must be input "
                                       f"size {codec.input_size} / 4")
        down = 2**num_blocks
        if hw % down or hh % down:
            raise InvalidArgumentError(
                f"heatmap size {codec.heatmap_size} must be divisible by 2^num_blocks = {down} (input size a multiple "
                f"of {4 * down}); got input size {codec.input_size} with num_blocks={num_blocks}"
            )
        k = codec.num_points
        direct = codec.mean_estimator == "direct"
        inputs = keras.Input(shape=(h, w, 3), name="images")

        # stem ("features")
        x = keras.layers.ZeroPadding2D(3, name="features_pad0")(inputs)
        x = keras.layers.Conv2D(channels, 7, strides=2, use_bias=False, kernel_initializer=_conv_init(),
                                name="features_conv0")(x)
        x = _bn("features_norm0")(x)
        x = keras.layers.ReLU(name="features_relu0")(x)
        stem = keras.layers.MaxPool2D(2, name="features_pool0")(x)

        blk = dict(growth_rate=growth_rate, neck_size=neck_size, order=order)
        downs = [_DenseBlockPosition(f"hg_down{j}", channels, skip=True, **blk) for j in range(num_blocks)]
        ups = [_DenseBlockPosition(f"hg_up{j}", channels, skip=False, **blk) for j in range(num_blocks)]
        neck = _DenseBlockPosition("hg_neck", channels, skip=False, **blk)
        bound = 1.0 / math.sqrt(channels * (hw // down) * (hh // down))  # torch Linear default, fan_in = 2048
        cen = keras.layers.Dense(k * (5 if direct else 3), kernel_initializer=_conv_init(),
                                 bias_initializer=keras.initializers.RandomUniform(-bound, bound), name="cholesky_fc_1")
        factor = CholeskyFactor(k, 5 if direct else 3, name="cholesky_factor")

        saved_inputs = [stem] if order else []
        heatmaps, chols, means = [], [], []
        y = None
        for i in range(num_stacks):
            if i == 0:
                hg_in = stem
            else:
                hg_in = _bn_relu_conv([y] + saved_inputs, channels, 1, f"intermediate_{i}")
                saved_inputs = (saved_inputs + [hg_in])[-order:] if order else []
            # one U-Net
            z, skips = hg_in, []
            for j in range(num_blocks):
                z, s = downs[j]([z], i)
                skips.append(s)
                z = keras.layers.MaxPool2D(2, name=f"hg_pool{j}_{i}")(z)
            bottleneck = z
            y = neck([z], i)
            for j in reversed(range(num_blocks)):
                y = NearestUpsampling(2, name=f"hg_upsample{j}_{i}")(y)
                y = ups[j]([y, skips[j]], i)
            heatmaps.append(_bn_relu_conv([y], k, 1, f"linears_{i}"))
            # CEN on the bottleneck, flattened as torch does (C, H, W)
            nchw = keras.layers.Permute((3, 1, 2), name=f"cholesky_nchw_{i}")(bottleneck)
            flat = keras.layers.Flatten(name=f"cholesky_flatten_{i}")(nchw)
            out = factor(cen(flat))
            if direct:
                out, mean = out
                means.append(mean)
            chols.append(out)

        def stacked(ts, name, shape):
            if len(ts) == 1:
                return keras.layers.Reshape(shape, name=name)(ts[0])
            return keras.layers.Concatenate(axis=1, name=name)([keras.layers.Reshape(shape, name=f"{name}_{i}")(t)
                                                                for i, t in enumerate(ts)])

        outputs = {
            "heatmaps": heatmaps[-1],
            "cholesky": chols[-1],
            "stack_heatmaps": (keras.layers.Identity(name="stack_heatmaps")(heatmaps[0]) if num_stacks == 1
                               else keras.layers.Concatenate(axis=-1, name="stack_heatmaps")(heatmaps)),
            "stack_cholesky": stacked(chols, "stack_cholesky", (1, k, 3)),
        }
        if direct:
            outputs["means"] = means[-1]
            outputs["stack_means"] = stacked(means, "stack_means", (1, k, 2))
        kwargs.setdefault("name", "uglli")
        self._finish(inputs, outputs, codec=codec, **kwargs)
        self.num_stacks = int(num_stacks)
        self.channels = int(channels)
        self.growth_rate = int(growth_rate)
        self.neck_size = int(neck_size)
        self.num_blocks = int(num_blocks)
        self.order = int(order)

    def get_config(self):
        return {
            **self._base_config(),
            "num_stacks": self.num_stacks,
            "channels": self.channels,
            "growth_rate": self.growth_rate,
            "neck_size": self.neck_size,
            "num_blocks": self.num_blocks,
            "order": self.order,
        }
