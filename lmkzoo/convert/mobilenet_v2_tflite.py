"""ImageNet MobileNetV2 weights from an int8 TFLite classifier (BatchNorm folded) into a lmkzoo backbone.

The one ImageNet MobileNetV2 that can be had here is TensorFlow's ``tf2_mobilenet_v2_1.0_224_ptq.tflite``
(google-coral/test_data, Apache-2.0): per-channel int8 weights, int32 biases, every BatchNorm folded into its
conv, inputs in ``[-1, 1]``. Its 35 backbone CONV_2D and 17 DEPTHWISE_CONV_2D ops correspond one to one, in graph
order, to the convs of :class:`~lmkzoo.models.backbones.MobileNetV2Backbone` (torchvision's ``features.0.0 ...
features.18.0``); the 36th CONV_2D (after the global mean) is the 1001-class classifier (class 0: background).

Conversion:

* dequantize: ``w = (q - zero_point) * scale`` per output channel, ``b = q_b * scale_b``;
* the ``[-1, 1]`` input mapping becomes the model's own normalisation: the stem conv's weights and bias absorb the
  affine between ``(x / 255 - mean) / std`` and ``x / 127.5 - 1`` (exact away from the zero-padded border);
* each BatchNorm becomes the identity plus the folded bias in inference: ``gamma = sigma``, ``moving_mean = mu``,
  ``moving_variance = sigma^2 - eps``, ``beta = mu + b``. With ``calibration_images``, ``mu`` and ``sigma`` are the
  conv outputs' per-channel mean and standard deviation on those images, so that a BatchNorm in *training* mode
  (batch statistics, the first steps of fine-tuning) also starts close to the ImageNet network instead of
  re-normalising every activation to unit variance; without them ``mu = 0, sigma = 1``.

TensorFlow pads its stride-2 convs (0, 1) where the torchvision-layout backbone pads (1, 1): the converted
backbone sees the same features shifted by at most one input pixel per stride-2 stage, which fine-tuning absorbs;
the classification test (``tests/test_imagenet_init.py``) checks that the top-5 classes are the TFLite file's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lmkzoo.errors import CheckpointMismatchError, InvalidArgumentError

__all__ = ["read_mobilenet_v2_tflite", "load_imagenet_mobilenet_v2", "imagenet_classifier", "KNOWN_SHA256",
           "BACKBONE_CONVS", "BACKBONE_DEPTHWISE"]

#: ``tf2_mobilenet_v2_1.0_224_ptq.tflite`` of google-coral/test_data (commit 104342d2)
KNOWN_SHA256 = "5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c"
BACKBONE_CONVS = 35
BACKBONE_DEPTHWISE = 17


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dequantize(value: np.ndarray, q: dict, axis: int) -> np.ndarray:
    scales = np.asarray(q["scales"], np.float64)
    zeros = np.asarray(q["zero_points"], np.float64)
    shape = [1] * value.ndim
    if scales.size > 1:
        shape[axis] = -1
    return ((value.astype(np.float64) - zeros.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def read_mobilenet_v2_tflite(path) -> dict:
    """The float weights of a quantized MobileNetV2 TFLite classifier.

    Returns:
        ``{"convs": [(kind, kernel, bias), ...], "classifier": (kernel (1280, C), bias (C,)), "sha256": str,
        "input_scale": float, "input_zero_point": float}`` with ``kind`` ``"conv"`` (kernel ``(kh, kw, in, out)``)
        or ``"depthwise"`` (kernel ``(kh, kw, C, 1)``), in graph order.
    Raises:
        CheckpointMismatchError: the file is not a TFLite model of MobileNetV2's structure (naming what differs).
    """
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"ImageNet MobileNetV2 weights: no file at {path}")
    try:
        it = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as e:
        raise CheckpointMismatchError(f"{path} is not a TFLite model ({e})") from None
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    convs = []
    for op in it._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        w_t, b_t = tensors[op["inputs"][1]], tensors[op["inputs"][2]]
        if w_t["dtype"] != np.int8 or b_t["dtype"] != np.int32:
            raise CheckpointMismatchError(f"{path}: expected int8 weights and int32 biases; op {op['index']} has "
                                     f"{w_t['dtype'].__name__} / {b_t['dtype'].__name__}")
        depthwise = op["op_name"] == "DEPTHWISE_CONV_2D"
        q = it.get_tensor(w_t["index"])
        w = _dequantize(q, w_t["quantization_parameters"], axis=3 if depthwise else 0)
        b = _dequantize(it.get_tensor(b_t["index"]), b_t["quantization_parameters"], axis=0)
        # TFLite conv (out, kh, kw, in) → Keras (kh, kw, in, out); depthwise (1, kh, kw, C) → (kh, kw, C, 1)
        kernel = np.transpose(w, (1, 2, 3, 0))
        convs.append(("depthwise" if depthwise else "conv", kernel, b))
    n_conv = sum(k == "conv" for k, _, _ in convs)
    n_dw = sum(k == "depthwise" for k, _, _ in convs)
    if n_conv != BACKBONE_CONVS + 1 or n_dw != BACKBONE_DEPTHWISE or convs[-1][0] != "conv":
        raise CheckpointMismatchError(f"{path}: expected MobileNetV2's {BACKBONE_CONVS + 1} CONV_2D (the last the classifier) "
                                 f"and {BACKBONE_DEPTHWISE} DEPTHWISE_CONV_2D ops; found {n_conv} and {n_dw}")
    _, cls_kernel, cls_bias = convs.pop()
    inp = it.get_input_details()[0]
    scale, zero = inp["quantization"]
    if not scale:
        raise CheckpointMismatchError(f"{path}: the input is not quantized; expected uint8 pixels with a scale")
    return {"convs": convs, "classifier": (cls_kernel.reshape(-1, cls_kernel.shape[-1]), cls_bias),
            "sha256": _sha256(path), "input_scale": float(scale), "input_zero_point": float(zero)}


def _conv_bn_pairs(backbone):
    """The backbone's (conv, BatchNorm) layer pairs in graph order."""
    import keras

    pairs = []
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            conv = layer.input._keras_history[0]
            if not isinstance(conv, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
                raise InvalidArgumentError(f"BatchNormalization {layer.name!r} does not follow a conv")
            pairs.append((conv, layer))
    return pairs


def load_imagenet_mobilenet_v2(backbone, path, *, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                               calibration_images=None) -> dict:
    """Set a width-1.0 :class:`~lmkzoo.models.backbones.MobileNetV2Backbone` to the ImageNet weights in ``path``.

    Args:
        backbone: the backbone (with its final 1x1 conv, as PIPNet-MNV2; the heatmap/LOTR backbones without it get
            every layer but that one).
        path: the TFLite file (``tf2_mobilenet_v2_1.0_224_ptq.tflite``).
        mean, std: the normalisation the network's inputs have (the model's ``input`` spec), folded into the stem.
        calibration_images: optional float ``(N, H, W, 3)`` inputs *as the network sees them* (normalised) for the
            BatchNorm statistics (see the module docstring).
    Returns:
        ``{"sha256", "layers": n converted, "calibrated": bool}`` for the model card.
    """
    import keras

    from lmkzoo.models.backbones import MobileNetV2Backbone

    if not isinstance(backbone, MobileNetV2Backbone) or backbone.width_multiplier != 1.0:
        raise InvalidArgumentError("ImageNet weights exist for MobileNetV2 at width 1.0 only; got "
                                   f"{type(backbone).__name__} width {getattr(backbone, 'width_multiplier', '?')}")
    src = read_mobilenet_v2_tflite(path)
    pairs = _conv_bn_pairs(backbone)
    convs = src["convs"][: len(pairs)]
    if len(pairs) < len(src["convs"]) - 1 or len(pairs) > len(src["convs"]):
        raise CheckpointMismatchError(f"{path}: {len(src['convs'])} convs do not fit the backbone's {len(pairs)}")
    # the stem absorbs the input mapping: tflite sees t = (p - zero) * scale with p = 255 (std * x + mean)
    kind, k0, b0 = convs[0]
    a = 255.0 * np.asarray(std, np.float64) * src["input_scale"]
    c = (255.0 * np.asarray(mean, np.float64) - src["input_zero_point"]) * src["input_scale"]
    k0f = (k0 * a.reshape(1, 1, 3, 1)).astype(np.float32)
    b0f = (b0 + np.einsum("hwio,i->o", k0.astype(np.float64), c)).astype(np.float32)
    convs = [(kind, k0f, b0f)] + convs[1:]
    for i, ((conv, _bn), (kind, kernel, _)) in enumerate(zip(pairs, convs)):
        want = tuple(conv.kernel.shape)
        is_dw = isinstance(conv, keras.layers.DepthwiseConv2D)
        if (kind == "depthwise") != is_dw or tuple(kernel.shape) != want:
            raise CheckpointMismatchError(f"{path}: conv {i} is a {kind} of shape {kernel.shape}; the backbone's "
                                     f"{conv.name!r} is {'depthwise ' if is_dw else ''}{want}")
        conv.kernel.assign(kernel)
    mu = [np.zeros(len(b), np.float32) for _, _, b in convs]
    sigma = [np.ones(len(b), np.float32) for _, _, b in convs]
    if calibration_images is not None:
        x = np.asarray(calibration_images, np.float32)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise InvalidArgumentError(f"calibration_images must be (N, H, W, 3); got shape {x.shape}")
        # with identity BatchNorms the backbone computes the ImageNet network: read every conv's output on x
        for (_conv, bn), (_, _, b) in zip(pairs, convs):
            _set_bn(bn, np.zeros_like(b), np.ones_like(b), b)
        probe = keras.Model(backbone.inputs, [conv.output for conv, _ in pairs])
        outs = probe.predict(x, batch_size=8, verbose=0)
        mu = [o.mean(axis=(0, 1, 2)) for o in outs]
        sigma = [np.maximum(o.std(axis=(0, 1, 2)), 1e-3) for o in outs]
    for (_conv, bn), (_, _, b), m, s in zip(pairs, convs, mu, sigma):
        _set_bn(bn, m, s, b)
    return {"sha256": src["sha256"], "layers": len(pairs), "calibrated": calibration_images is not None}


def _set_bn(bn, mu, sigma, bias):
    """BatchNorm(y) = y + bias in inference: gamma = sigma, beta = mu + bias, moving stats (mu, sigma^2 - eps)."""
    eps = float(bn.epsilon)
    sigma = np.maximum(np.asarray(sigma, np.float64), np.sqrt(2 * eps))
    bn.gamma.assign(sigma.astype(np.float32))
    bn.beta.assign((np.asarray(mu, np.float64) + bias).astype(np.float32))
    bn.moving_mean.assign(np.asarray(mu, np.float32))
    bn.moving_variance.assign((sigma**2 - eps).astype(np.float32))


def imagenet_classifier(path, *, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=224):
    """The converted backbone with the file's classifier: normalised ``(N, S, S, 3)`` → 1001 softmax scores."""
    import keras

    from lmkzoo.models.backbones import MobileNetV2Backbone

    backbone = MobileNetV2Backbone(input_shape=(input_size, input_size, 3))
    load_imagenet_mobilenet_v2(backbone, path, mean=mean, std=std)
    kernel, bias = read_mobilenet_v2_tflite(path)["classifier"]
    inputs = keras.Input((input_size, input_size, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    dense = keras.layers.Dense(kernel.shape[1], activation="softmax", name="classifier")
    out = dense(x)
    dense.set_weights([kernel, bias])
    return keras.Model(inputs, out, name="mobilenetv2_imagenet")
