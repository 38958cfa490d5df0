"""Exports of a serving model: TFLite (fp32 / float16 / dynamic-range / int8), ONNX (tf2onnx) and SavedModel.

Every format starts from one *frozen* function: the serving model (uint8 crop → normalise → network → the
family codec's decode) traced with a dynamic batch and its variables folded into constants, with the
output dict keys as output names. Freezing first matters: the TFLite converter keeps Keras 3 variables as
resource variables (VAR_HANDLE / READ_VARIABLE, unfused BatchNorm, no XNNPACK) when given the unfrozen
function, which is several times slower and not GPU-delegate friendly.

Files are written to a temporary name beside the target and renamed, so an interrupted export never
leaves a half-written model behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["FORMATS", "QUANTIZE", "ONNX_OPSET", "frozen_serving_function", "export_tflite", "export_onnx",
           "export_saved_model", "EXTENSIONS"]

FORMATS = ("tflite", "onnx", "saved_model")
QUANTIZE = (None, "float16", "dynamic", "int8")
EXTENSIONS = {"tflite": ".tflite", "onnx": ".onnx", "saved_model": ""}
#: ONNX opset of every lmkzoo ONNX export (ONNX Runtime >= 1.12 runs it; tf2onnx 1.16+ writes it)
ONNX_OPSET = 17


def frozen_serving_function(serving_model, batch_size: int | None = None):
    """``tf.function`` (images[, crop_to_image]) → {output name: tensor} with the weights as constants.

    ``batch_size=None`` traces a dynamic batch (CPU runtimes resize it per call); a fixed batch gives a graph
    of static shapes only, which GPU delegates need (they reject dynamic-sized tensors).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise InvalidArgumentError(f"batch_size must be None (dynamic) or a positive integer; got {batch_size!r}")
    batch = None if batch_size is None else int(batch_size)
    shape = [batch, *serving_model.inputs[0].shape[1:]]
    specs = [tf.TensorSpec(shape, tf.uint8, name="images")]
    with_affine = len(serving_model.inputs) == 2
    if with_affine:
        specs.append(tf.TensorSpec([batch, 2, 3], tf.float32, name="crop_to_image"))

        def call(images, crop_to_image):
            return serving_model([images, crop_to_image], training=False)
    else:
        def call(images):
            return serving_model(images, training=False)

    concrete = tf.function(call, input_signature=specs).get_concrete_function()
    keys = sorted(concrete.structured_outputs)  # tf.nest flattens a dict in sorted key order
    frozen = convert_variables_to_constants_v2(concrete)

    if with_affine:
        def named(images, crop_to_image):
            return dict(zip(keys, frozen(images, crop_to_image)))
    else:
        def named(images):
            return dict(zip(keys, frozen(images)))

    return tf.function(named, input_signature=specs)


def _saved_model_dir(fn, folder: Path) -> Path:
    import tensorflow as tf

    module = tf.Module()
    module.serve = fn
    tf.saved_model.save(module, str(folder), signatures={"serving_default": fn.get_concrete_function()})
    return folder


def _atomic_write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a shared model file unreadable to others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_quantize(quantize, representative):
    if quantize not in QUANTIZE:
        raise InvalidArgumentError(f"quantize must be one of {list(QUANTIZE)}; got {quantize!r}")
    if quantize == "int8" and representative is None:
        raise InvalidArgumentError("quantize='int8' needs representative_data: uint8 crops, a folder of images or a "
                                   "TFDS split such as 'landmark_folder/lfw_teacher68:validation'")


def export_tflite(serving_model, path, *, metadata, quantize=None, representative=None, batch_size=None,
                  float_scopes=()) -> Path:
    """Write a TFLite file with ``metadata`` embedded (see :mod:`lmkzoo.export.metadata`).

    Args:
        quantize: ``None`` (float32), ``"float16"`` (weights stored as fp16, computed in fp32 on CPU),
            ``"dynamic"`` (int8 weights, float activations) or ``"int8"`` (int8 weights and activations,
            calibrated on ``representative``; ops without int8 kernels, like parts of the decode, stay float).
        representative: ``(N, H, W, 3)`` uint8 crops for ``"int8"`` calibration.
        batch_size: ``None`` (dynamic batch) or a fixed batch (GPU delegates need static shapes).
        float_scopes: for ``"int8"``: name scopes (Keras layer names, e.g. the codec's) whose ops stay float.
            The decode computes sub-pixel coordinates and divides by sums that int8 can round to zero (UGLLI's
            spatial mean fails with "DIV ... data[i] != zero_point"), so lmkzoo keeps the codec in float.
    """
    import tensorflow as tf

    from lmkzoo.export.metadata import embed_tflite_metadata

    _check_quantize(quantize, representative)
    with tempfile.TemporaryDirectory(prefix="lmkzoo-export-") as tmp:
        folder = _saved_model_dir(frozen_serving_function(serving_model, batch_size), Path(tmp) / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(folder), signature_keys=["serving_default"])
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            crops = np.asarray(representative)
            with_affine = len(serving_model.inputs) == 2

            b = batch_size or 1

            def samples():
                for i in range(0, len(crops) - b + 1, b):
                    feed = {"images": crops[i:i + b].astype(np.uint8)}
                    if with_affine:
                        feed["crop_to_image"] = np.tile(np.array([[[1, 0, 0], [0, 1, 0]]], np.float32), (b, 1, 1))
                    yield feed

            converter.representative_dataset = samples
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize == "int8" and float_scopes:
            model = _int8_with_float_scopes(converter, converter.representative_dataset, float_scopes)
        else:
            model = converter.convert()
    return _atomic_write(Path(path), embed_tflite_metadata(model, metadata))


def _int8_with_float_scopes(converter, samples, scopes) -> bytes:
    """Full-integer conversion that keeps every op under one of ``scopes`` in float (TensorFlow's selective
    quantization: ``QuantizationDebugger`` with the scopes' TFLite tensors denylisted)."""
    import tensorflow as tf

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover
        Interpreter = tf.lite.Interpreter
    names = [d["name"] for d in Interpreter(model_content=converter.convert()).get_tensor_details()]
    deny = sorted({n for n in names if any(f"/{scope}" in n for scope in scopes)})
    if not deny:
        raise InvalidArgumentError(f"no op of the model is under {list(scopes)}; cannot keep them in float")
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=deny)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=samples,
                                                         debug_options=options)
    return debugger.get_nondebug_quantized_model()


def export_onnx(serving_model, path, *, metadata, opset: int = ONNX_OPSET, batch_size=None) -> Path:
    """Write an ONNX file (tf2onnx, opset :data:`ONNX_OPSET`) with ``metadata`` as ``metadata_props``."""
    import onnx
    import tf2onnx

    from lmkzoo.export.metadata import onnx_metadata_props

    fn = frozen_serving_function(serving_model, batch_size)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=int(opset))
    del proto.metadata_props[:]
    for k, v in onnx_metadata_props(metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "lmkzoo"
    onnx.checker.check_model(proto)
    return _atomic_write(Path(path), proto.SerializeToString())


def export_saved_model(serving_model, path, *, metadata, batch_size=None) -> Path:
    """Write a SavedModel folder (signature ``serving_default``) with ``assets/lmkzoo_metadata.json``."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        folder = _saved_model_dir(frozen_serving_function(serving_model, batch_size), tmp / "model")
        (folder / "assets").mkdir(exist_ok=True)
        (folder / "assets" / "lmkzoo_metadata.json").write_text(json.dumps(metadata, indent=1, sort_keys=True))
        if path.exists():
            shutil.rmtree(path)
        os.replace(folder, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
