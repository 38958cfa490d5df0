"""The serving model: uint8 crop → normalise → network → the family codec's decode, as ONE Keras model.

Keras inference (``Landmarker.predict``), evaluation and the TFLite / ONNX exports all run this graph, so
decoding is written once (the codec) and never re-implemented by a user of an exported file.
"""

from __future__ import annotations

import keras

from lmkzoo.models.layers import ImageNormalization

__all__ = ["build_serving_model"]


def build_serving_model(network, *, mean, std, with_affine: bool = False, decode: bool = True,
                        name: str = "serving") -> keras.Model:
    """Serving model for ``network`` (a :class:`~lmkzoo.models.network.LandmarkNetwork`).

    Inputs: ``images`` uint8 ``(B, H, W, 3)`` crops; with ``with_affine`` also ``crop_to_image``
    ``(B, 2, 3)`` float32 affines that map crop pixels to image pixels.
    Outputs: ``landmarks`` ``(B, K, 2)`` (crop pixels, or image pixels with ``with_affine``), ``scores``
    ``(B, K)`` and, for families that have it, ``covariance`` ``(B, K, 2, 2)``. ``decode=False`` returns the
    network's raw outputs instead (benchmarks measure the decode's share of the latency with it).
    """
    w, h = network.input_size
    images = keras.Input(shape=(h, w, 3), dtype="uint8", name="images")
    x = ImageNormalization(mean, std, name="normalize")(images)
    if not decode:
        if with_affine:
            raise ValueError("decode=False returns raw outputs; it takes no crop_to_image affine")
        return keras.Model(images, network(x), name=name)
    decoded = network.codec(network(x))
    outputs = dict(decoded)
    inputs = [images]
    if with_affine:
        affine = keras.Input(shape=(2, 3), dtype="float32", name="crop_to_image")
        inputs.append(affine)
        outputs = _ApplyAffine(name="to_image")(decoded, affine)
    return keras.Model(inputs if with_affine else images, outputs, name=name)


class _ApplyAffine(keras.layers.Layer):
    """Points (and covariances) of each example through its own 2x3 affine (keras.ops, no gather)."""

    def call(self, decoded, affine):
        from keras import ops

        # split, not slicing: a shrinking STRIDED_SLICE is rejected by the TFLite GPU delegate
        a, t = ops.split(affine, [2], axis=-1)  # (B, 2, 2), (B, 2, 1)
        pts = ops.matmul(decoded["landmarks"], ops.transpose(a, (0, 2, 1))) + ops.transpose(t, (0, 2, 1))
        out = dict(decoded)
        out["landmarks"] = pts
        if "covariance" in decoded:
            a4 = ops.expand_dims(a, 1)
            out["covariance"] = ops.matmul(ops.matmul(a4, decoded["covariance"]), ops.transpose(a4, (0, 1, 3, 2)))
        return out
