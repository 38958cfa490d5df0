"""What an exported file says about itself: scheme, landmark names, input contract, output meanings.

The same facts go into every format: a TFLite file carries them as a model ``Metadata`` entry named
``lmkzoo`` (a JSON buffer inside the flatbuffer), an ONNX file as ``metadata_props`` (one key per field,
JSON values), a SavedModel as ``assets/lmkzoo_metadata.json``. ``lmkzoo.load(path)`` reads them back and
rebuilds the :class:`~lmkzoo.registry.ModelSpec`, so a user of the file needs nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["METADATA_NAME", "make_metadata", "embed_tflite_metadata", "read_tflite_metadata", "read_onnx_metadata",
           "read_metadata", "spec_from_metadata"]

#: name of the TFLite metadata entry (and prefix of nothing else: ONNX keys are the JSON fields themselves)
METADATA_NAME = "lmkzoo"
_FORMAT = "lmkzoo-serving/1"

_OUTPUTS = {
    "landmarks": "(B, K, 2) float32: (x, y) of each landmark in crop pixels (image pixels when the model takes "
                 "crop_to_image), (0, 0) = top-left corner of the top-left pixel",
    "scores": "(B, K) float32: per-landmark confidence (the family's score: heatmap / score-map peak)",
    "covariance": "(B, K, 2, 2) float32: per-landmark covariance in the same pixels as landmarks",
    "scale": "(B, K, 2) float32: per-landmark Laplace scale b along x and y in crop pixels (LaplaceKL; "
             "covariance = diag(2 b_x², 2 b_y²))",
}


def make_metadata(spec, *, outputs, with_affine: bool, fmt: str, quantize: str | None,
                  batch_size: int | None = None) -> dict[str, Any]:
    """The metadata dict of an export of ``spec`` (a :class:`~lmkzoo.registry.ModelSpec`)."""
    from lmkzoo import __version__, schemes

    scheme = schemes.get(spec.scheme)
    w, h = spec.input_size
    b = -1 if batch_size is None else int(batch_size)
    inputs = {"images": {"dtype": "uint8", "shape": [b, h, w, 3], "color": "RGB",
                         "meaning": "face crops cut with the crop policy below; normalised inside the graph as "
                                    "(x / 255 - mean) / std"}}
    if with_affine:
        inputs["crop_to_image"] = {"dtype": "float32", "shape": [b, 2, 3],
                                   "meaning": "2x3 affine mapping crop pixels to image pixels, per crop"}
    return {
        "format": _FORMAT,
        "lmkzoo_version": __version__,
        "model": spec.name,
        "family": spec.family,
        "export_format": fmt,
        "quantize": quantize,
        "batch_size": None if batch_size is None else int(batch_size),
        "scheme": scheme.name,
        "num_points": scheme.num_points,
        "landmark_names": list(scheme.names),
        "flip_permutation": [int(i) for i in scheme.flip_permutation],
        "input_size": [w, h],
        "mean": list(spec.mean),
        "std": list(spec.std),
        "crop": dict(spec.crop),
        "inputs": inputs,
        "outputs": {k: _OUTPUTS.get(k, "family-specific output, see the family's codec") for k in outputs},
        "with_affine": bool(with_affine),
        "zoo_spec": spec.to_dict(),
    }


# ------------------------------------------------------------------------------------------------ TFLite
def _schema():
    """The TFLite flatbuffer schema: LiteRT's copy (reading a file must not import TensorFlow), TensorFlow's where
    ai-edge-litert is not installed."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def embed_tflite_metadata(model_bytes: bytes, metadata: Mapping) -> bytes:
    """``model_bytes`` with a ``Metadata`` entry ``lmkzoo`` holding ``metadata`` as JSON (any older one replaced)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model_bytes, 0))
    buf = schema.BufferT()
    buf.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _decode(m.name) != METADATA_NAME] + [entry]
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _decode(name) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def read_tflite_metadata(path_or_bytes) -> dict[str, Any]:
    """The ``lmkzoo`` metadata of a TFLite file (raises :class:`InvalidArgumentError` when it has none)."""
    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else Path(path_or_bytes).read_bytes()
    schema = _schema()
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            m = model.Metadata(i)
            if _decode(m.Name()) == METADATA_NAME:
                raw = model.Buffers(m.Buffer()).DataAsNumpy()
                return json.loads(bytes(raw).decode("utf-8"))
    except Exception as e:  # a file that is not a TFLite flatbuffer
        raise InvalidArgumentError(f"{_where(path_or_bytes)} is not a readable TFLite model ({e})") from None
    raise InvalidArgumentError(f"{_where(path_or_bytes)} carries no lmkzoo metadata: it was not exported by lmkzoo "
                               "(export it with Landmarker.export or `lmkzoo export`)")


def _where(path_or_bytes) -> str:
    return "the model bytes" if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)


# ------------------------------------------------------------------------------------------------ ONNX
def onnx_metadata_props(metadata: Mapping) -> dict[str, str]:
    """ONNX ``metadata_props``: one entry per field, values as JSON."""
    return {k: json.dumps(v, sort_keys=True) for k, v in metadata.items()}


def read_onnx_metadata(path) -> dict[str, Any]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise InvalidArgumentError(f"{path} is not a readable ONNX model ({e})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("format") is None:
        raise InvalidArgumentError(f"{path} carries no lmkzoo metadata: it was not exported by lmkzoo")
    return {k: json.loads(v) for k, v in props.items()}


def read_metadata(path) -> dict[str, Any]:
    """Metadata of an exported ``.tflite`` or ``.onnx`` file."""
    p = Path(path)
    if p.suffix == ".tflite":
        return read_tflite_metadata(p)
    if p.suffix == ".onnx":
        return read_onnx_metadata(p)
    raise InvalidArgumentError(f"cannot read metadata of {p}: expected a .tflite or .onnx file")


def spec_from_metadata(meta: Mapping):
    """The :class:`~lmkzoo.registry.ModelSpec` an export was made from."""
    from lmkzoo.registry import ModelSpec

    if meta.get("format") != _FORMAT or "zoo_spec" not in meta:
        raise InvalidArgumentError(f"unsupported lmkzoo export metadata format {meta.get('format')!r}; "
                                   f"this lmkzoo reads {_FORMAT!r}")
    return ModelSpec.from_dict(meta["zoo_spec"])
