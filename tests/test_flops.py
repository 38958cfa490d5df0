"""lmkzoo.flops: multiply-adds per layer type (hand counts), nested and custom layers, known backbones."""

import keras
import numpy as np
import pytest

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.flops import count_macs, param_size_mb
from lmkzoo.models.backbones import MobileNetV2Backbone, ResNetBackbone


def test_layer_rules_by_hand():
    x = keras.Input((8, 8, 4))
    y = keras.layers.Conv2D(6, 3, padding="same", name="conv")(x)  # 8*8*6 * 3*3*4
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(y)  # 4*4*6 * 9
    y = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same", name="deconv")(y)  # 4*4*6 (inputs) * 16*5
    y = keras.layers.Conv2D(4, 1, groups=1, name="pw")(y)  # 8*8*4 * 5
    y = keras.layers.Dense(3, name="dense")(y)  # 8*8 * 4*3 (Dense on a 4-D input)
    model = keras.Model(x, y)
    r = count_macs(model)
    per = {layer.name: layer.macs for layer in r.layers}
    assert per == {"conv": 8 * 8 * 6 * 36, "bn": 0, "dw": 4 * 4 * 6 * 9, "deconv": 4 * 4 * 6 * 16 * 5,
                   "pw": 8 * 8 * 4 * 5, "dense": 8 * 8 * 4 * 3}
    assert r.macs == sum(per.values()) and r.gflops == pytest.approx(2 * r.gmacs)
    assert r.params == model.count_params() and r.trainable_params < r.params  # BN moving statistics
    with_bn = count_macs(model, include_batchnorm=True)
    assert with_bn.macs - r.macs == 8 * 8 * 6
    assert r.size_mb == pytest.approx(r.params * 4 / 2**20) == param_size_mb(r.params)


def test_grouped_and_separable_convs():
    x = keras.Input((6, 6, 8))
    y = keras.layers.Conv2D(8, 3, padding="same", groups=4, name="grouped")(x)  # 6*6*8 * 9*8/4
    y = keras.layers.SeparableConv2D(5, 3, padding="same", depth_multiplier=2, name="sep")(y)  # 36*16*9 + 36*16*5
    r = count_macs(keras.Model(x, y))
    per = {layer.name: layer.macs for layer in r.layers}
    assert per == {"grouped": 36 * 8 * 18, "sep": 36 * 16 * 9 + 36 * 16 * 5}


def test_nested_models_custom_layers_and_attention():
    inner_in = keras.Input((None, None, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, strides=2, padding="same", name="inner_conv")(inner_in))

    class Block(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.proj = keras.layers.Dense(6, name="proj")
            self.attn = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, name="attn")

        def call(self, t):
            t = self.proj(t)
            return self.attn(t, t)

    x = keras.Input((16, 16, 3))
    y = inner(x)  # the nested model is built for any size; its shapes come from this call
    y = keras.layers.Reshape((64, 4))(y)
    y = Block(name="block")(y)
    r = count_macs(keras.Model(x, y))
    per = {}
    for layer in r.layers:
        per[layer.name] = per.get(layer.name, 0) + layer.macs
    assert per["inner_conv"] == 8 * 8 * 4 * 27
    assert per["proj"] == 64 * 4 * 6
    assert per["query"] == per["key"] == per["value"] == 64 * 6 * 2 * 3
    assert per["attention_output"] == 64 * 2 * 3 * 6
    assert per["attn"] == 2 * 64 * 64 * (3 + 3)  # scores and the weighted sum of values
    # running the counter leaves the layers untouched
    assert "call" not in vars(inner.get_layer("inner_conv"))


def test_known_backbones():
    """Published counts at 224x224: ResNet-18 1.81 GMACs / 11.7 M parameters (with its classifier),
    MobileNetV2-1.0 0.30 GMACs."""
    r18 = count_macs(ResNetBackbone(18, input_shape=(224, 224, 3)))
    assert r18.gmacs == pytest.approx(1.814, abs=0.005)
    assert r18.trainable_params == 11_176_512  # docs/reference_facts.md §A2 (backbone without fc)
    mnv2 = count_macs(MobileNetV2Backbone(1.0, input_shape=(224, 224, 3)))
    assert mnv2.gmacs == pytest.approx(0.2995, abs=0.003)


def test_input_shape_argument_and_errors():
    x = keras.Input((None, None, 3))
    model = keras.Model(x, keras.layers.Conv2D(2, 1, name="c")(x))
    with pytest.raises(InvalidArgumentError, match="fully known"):
        count_macs(model)
    r = count_macs(model, (10, 20, 3))
    assert r.macs == 10 * 20 * 2 * 3 and r.input_shape == (10, 20, 3)
    assert "GMACs" in r.summary(top=3) and np.isclose(r.gmacs, 1.2e-6)
