"""The LaplaceKL discriminator: a 4-layer PatchGAN on the image stacked with K heatmaps (Robinson et al. 2019, §3.4).

Input: ``[d, h]``, the normalised RGB crop concatenated with the K probability maps (real: ω(s) rendered
from labels; fake: the generator's softmax maps), so ``3 + K`` channels. Four 4x4 convs in the PatchGAN
pattern of pix2pix (Isola et al. 2017)::

    noise σ → conv 4x4 s2 (f)                → LeakyReLU(0.2)        bottom layer: no BN
    noise σ → conv 4x4 s2 (2f)  → BN        → LeakyReLU(0.2)
    noise σ → conv 4x4 s1 (4f)  → BN        → LeakyReLU(0.2)
    noise σ → conv 4x4 s1 (1)                                        top layer: no BN, no activation (logits)

Gaussian noise (σ = 0.2, training only) before every conv; BatchNorm on all but the first and last conv
(convs followed by BN have no bias, as in pix2pix); pads of 1 on each side (PyTorch style). An 80x80
input gives 18x18 patch logits.
"""

from __future__ import annotations

import keras

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError

__all__ = ["PatchDiscriminator"]


@lmkzoo_export
class PatchDiscriminator(keras.Model):
    """PatchGAN logits ``(B, h, w, 1)`` for ``(B, H, W, 3 + K)`` image+heatmap stacks.

    Args:
        input_shape: ``(H, W, 3 + K)``.
        filters: channels of the first conv (64 in pix2pix; doubled per layer).
        noise_stddev: σ of the Gaussian noise before each conv (0.2).
        negative_slope: LeakyReLU slope (0.2).
    """

    def __init__(self, input_shape, filters: int = 64, noise_stddev: float = 0.2, negative_slope: float = 0.2, **kwargs):
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InvalidArgumentError(f"input_shape must be (H, W, channels); got {input_shape!r}")
        if min(shape[:2]) < 16:
            raise InvalidArgumentError(f"the PatchGAN needs inputs of at least 16x16; got {shape[:2]}")
        if int(filters) < 1:
            raise InvalidArgumentError(f"filters must be >= 1; got {filters!r}")
        if not float(noise_stddev) >= 0:
            raise InvalidArgumentError(f"noise_stddev must be >= 0; got {noise_stddev!r}")
        L = keras.layers
        inputs = keras.Input(shape=shape, name="image_heatmaps")
        x = inputs
        plan = [(int(filters), 2, False), (2 * int(filters), 2, True), (4 * int(filters), 1, True), (1, 1, False)]
        for i, (ch, stride, bn) in enumerate(plan, start=1):
            x = L.GaussianNoise(float(noise_stddev), name=f"noise{i}")(x)
            x = L.ZeroPadding2D(1, name=f"pad{i}")(x)
            x = L.Conv2D(ch, 4, strides=stride, use_bias=not bn, name=f"conv{i}")(x)
            if bn:
                x = L.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i}")(x)
            if i < len(plan):
                x = L.LeakyReLU(negative_slope=float(negative_slope), name=f"lrelu{i}")(x)
        kwargs.setdefault("name", "patch_discriminator")
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self.input_shape_ = shape
        self.filters = int(filters)
        self.noise_stddev = float(noise_stddev)
        self.negative_slope = float(negative_slope)

    def get_config(self):
        return {
            "input_shape": list(self.input_shape_),
            "filters": self.filters,
            "noise_stddev": self.noise_stddev,
            "negative_slope": self.negative_slope,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
