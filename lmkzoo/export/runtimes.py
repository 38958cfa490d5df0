"""Runtimes for exported files: the LiteRT interpreter (TFLite, XNNPACK) and ONNX Runtime.

A runner maps a batch of uint8 crops ``(N, H, W, 3)`` to the serving outputs (``landmarks``, ``scores``,
``covariance`` where the family has it) as numpy arrays, exactly like the Keras runner, so a
:class:`~lmkzoo.tasks.landmarker.Landmarker` behaves the same on every runtime.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["TFLiteRunner", "ONNXRunner", "load_exported", "default_num_threads", "RUNTIMES"]

RUNTIMES = ("keras", "tflite", "onnx")


def default_num_threads() -> int:
    """Threads for the CPU runtimes: ``$LMKZOO_NUM_THREADS``, else every core (at most 4)."""
    env = os.environ.get("LMKZOO_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise InvalidArgumentError(f"LMKZOO_NUM_THREADS must be an integer; got {env!r}") from None
    return max(1, min(4, os.cpu_count() or 1))


def _identity_affines(n: int) -> np.ndarray:
    return np.tile(np.array([[[1, 0, 0], [0, 1, 0]]], np.float32), (n, 1, 1))


def _in_fixed_batches(run, crops: np.ndarray, batch: int | None) -> dict[str, np.ndarray]:
    """``run`` over ``crops`` in chunks of a model's fixed ``batch`` (the last one zero-padded); one call when the
    model's batch is dynamic."""
    if batch is None:
        return run(crops)
    outs = []
    for i in range(0, len(crops), batch):
        chunk = crops[i:i + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
        outs.append({k: v[:n] for k, v in run(chunk).items()})
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


class TFLiteRunner:
    """A ``.tflite`` file on the LiteRT interpreter (``ai-edge-litert``; ``tf.lite.Interpreter`` when it is not
    installed), XNNPACK on ``num_threads`` threads, through its ``serving_default`` signature."""

    runtime = "tflite"

    def __init__(self, path, *, num_threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - ai-edge-litert is a dependency of the export extra
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        self.path = Path(path)
        self.num_threads = int(num_threads or default_num_threads())
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=self.num_threads)
        signatures = self.interpreter.get_signature_list()
        if "serving_default" not in signatures:
            raise InvalidArgumentError(f"{self.path} has no 'serving_default' signature (signatures: {sorted(signatures)})")
        self.input_names = list(signatures["serving_default"]["inputs"])
        self.output_names = list(signatures["serving_default"]["outputs"])
        self._signature = self.interpreter.get_signature_runner("serving_default")
        shape = self._signature.get_input_details()["images"]["shape_signature"]
        self.batch_size = None if shape[0] < 0 else int(shape[0])

    def _run(self, crops):
        feeds = {"images": np.ascontiguousarray(crops, dtype=np.uint8)}
        if "crop_to_image" in self.input_names:
            feeds["crop_to_image"] = _identity_affines(len(crops))
        return {k: np.array(v) for k, v in self._signature(**feeds).items()}

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        return _in_fixed_batches(self._run, crops, self.batch_size)


class ONNXRunner:
    """An ``.onnx`` file on ONNX Runtime's CPU provider with ``num_threads`` intra-op threads."""

    runtime = "onnx"

    def __init__(self, path, *, num_threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise InvalidArgumentError("the ONNX runtime needs onnxruntime: pip install 'lmkzoo[export]'") from None
        self.path = Path(path)
        self.num_threads = int(num_threads or default_num_threads())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.num_threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        batch = self.session.get_inputs()[0].shape[0]
        self.batch_size = batch if isinstance(batch, int) and batch > 0 else None

    def _run(self, crops):
        feeds = {"images": np.ascontiguousarray(crops, dtype=np.uint8)}
        if "crop_to_image" in self.input_names:
            feeds["crop_to_image"] = _identity_affines(len(crops))
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        return _in_fixed_batches(self._run, crops, self.batch_size)


def load_exported(path, *, num_threads: int | None = None, **kwargs):
    """A :class:`~lmkzoo.tasks.landmarker.Landmarker` over an exported ``.tflite`` or ``.onnx`` file (its spec
    comes from the file's metadata)."""
    from lmkzoo.export.metadata import read_metadata, spec_from_metadata
    from lmkzoo.tasks.landmarker import Landmarker

    p = Path(os.fspath(path))
    if not p.is_file():
        raise InvalidArgumentError(f"exported model not found: {p}")
    spec = spec_from_metadata(read_metadata(p))
    runner = TFLiteRunner(p, num_threads=num_threads) if p.suffix == ".tflite" else ONNXRunner(p, num_threads=num_threads)
    return Landmarker(spec, None, runner=runner, **kwargs)
