"""Runtimes for exported files: the LiteRT interpreter (TFLite, XNNPACK) and ONNX Runtime.

A runner maps a batch of uint8 crops ``(N, H, W, 3)`` to the serving outputs (``landmarks``, ``scores``,
``covariance`` where the family has it) as numpy arrays, exactly like the Keras runner, so a
:class:`~lmkzoo.inference.landmarker.Landmarker` behaves the same on every runtime.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["KerasRunner", "TFLiteRunner", "ONNXRunner", "InterpreterPool", "litert_interpreter_class", "default_num_threads",
           "RUNTIMES"]

#: ``runtime=`` values of :func:`lmkzoo.load`: ``auto`` is LiteRT where a LiteRT form of the weights ships or is
#: cached (else built once and cached), Keras otherwise
RUNTIMES = ("auto", "keras", "tflite", "onnx")


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


def litert_interpreter_class():
    """LiteRT's ``Interpreter`` (``ai-edge-litert``, which imports no TensorFlow); ``tf.lite.Interpreter`` only
    where ai-edge-litert is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


class InterpreterPool:
    """Thread-safe access to one ``.tflite`` model: a pool of LiteRT interpreters, one per concurrent caller.

    A LiteRT interpreter holds its input and output tensors inside itself, so two threads invoking the same one
    overwrite each other's data (silently wrong results) or trip its "reference to internal data" check. The pool
    hands each caller an interpreter of its own for the length of one call (``with pool.acquire() as it:``) and
    creates another only when every existing one is busy, so serial use keeps a single interpreter and ``N``
    threads get at most ``N``. LiteRT releases the GIL while it runs, so threads do run in parallel; give each
    interpreter fewer CPU threads (``num_threads``) when many callers share few cores.

    Args:
        model_path: the ``.tflite`` file.
        num_threads: CPU threads of each interpreter (XNNPACK).
        setup: ``setup(interpreter) -> state`` run once per new interpreter (allocate tensors, look up tensor
            indices); :meth:`acquire` yields ``state``.
    """

    def __init__(self, model_path, *, num_threads: int, setup=None):
        import collections
        import threading

        self.model_path = Path(model_path)
        self.num_threads = int(num_threads)
        self._setup = setup or (lambda it: it)
        self._interpreter_class = litert_interpreter_class()
        # idle states; deque.append / .pop are atomic, and popping the last one (LIFO) hands out the warmest
        self._idle = collections.deque()
        self._lock = threading.Lock()
        self.size = 0  # interpreters made so far
        self.put(self.new())  # fail early (missing or corrupt file) and keep one ready

    def new(self):
        """A fresh interpreter's ``setup`` state (not in the pool until :meth:`put`)."""
        it = self._interpreter_class(model_path=str(self.model_path), num_threads=self.num_threads)
        with self._lock:
            self.size += 1
        return self._setup(it)

    def put(self, state) -> None:
        self._idle.append(state)

    @contextlib.contextmanager
    def acquire(self):
        """An interpreter's state for this caller alone, back into the pool afterwards."""
        try:
            state = self._idle.pop()
        except IndexError:  # every interpreter is busy in another thread
            state = self.new()
        try:
            yield state
        finally:
            self._idle.append(state)


class _Signature:
    """The ``serving_default`` signature of one interpreter, called through tensor indices: inputs are resized
    (and tensors reallocated) only when their shape changes, outputs are copied out."""

    def __init__(self, interpreter, signature_key: str = "serving_default"):
        signatures = interpreter.get_signature_list()
        if signature_key not in signatures:
            raise InvalidArgumentError(f"the model has no {signature_key!r} signature (signatures: {sorted(signatures)})")
        runner = interpreter.get_signature_runner(signature_key)
        self.interpreter = interpreter
        self.inputs = {k: (d["index"], [int(v) for v in d["shape_signature"]])
                       for k, d in runner.get_input_details().items()}
        self.outputs = {k: d["index"] for k, d in runner.get_output_details().items()}
        del runner  # it holds the interpreter's internals, which LiteRT then refuses to reallocate or invoke
        self._shapes = {k: None for k in self.inputs}
        interpreter.allocate_tensors()

    def __call__(self, feeds: dict) -> dict[str, np.ndarray]:
        it = self.interpreter
        resized = False
        for name, value in feeds.items():
            if self._shapes[name] != value.shape:
                it.resize_tensor_input(self.inputs[name][0], value.shape, strict=False)
                self._shapes[name] = value.shape
                resized = True
        if resized:
            it.allocate_tensors()
        for name, value in feeds.items():
            it.set_tensor(self.inputs[name][0], value)
        it.invoke()
        return {name: it.get_tensor(index) for name, index in self.outputs.items()}


class TFLiteRunner:
    """A ``.tflite`` file on the LiteRT interpreter (``ai-edge-litert``; ``tf.lite.Interpreter`` when it is not
    installed), XNNPACK on ``num_threads`` threads, through its ``serving_default`` signature.

    Safe to call from many threads at once: each concurrent call runs on an interpreter of its own
    (:class:`InterpreterPool`), so results equal serial calls.
    """

    runtime = "tflite"

    def __init__(self, path, *, num_threads: int | None = None):
        self.path = Path(path)
        self.num_threads = int(num_threads or default_num_threads())
        try:
            self.pool = InterpreterPool(self.path, num_threads=self.num_threads, setup=_Signature)
        except ValueError as e:  # LiteRT's message for a file that is not a TFLite model
            raise InvalidArgumentError(f"{self.path} is not a readable TFLite model ({e})") from None
        with self.pool.acquire() as sig:
            self.input_names = list(sig.inputs)
            self.output_names = list(sig.outputs)
            batch = sig.inputs["images"][1][0]
        self.batch_size = None if batch < 0 else int(batch)

    def _run(self, crops):
        feeds = {"images": np.ascontiguousarray(crops, dtype=np.uint8)}
        if "crop_to_image" in self.input_names:
            feeds["crop_to_image"] = _identity_affines(len(crops))
        with self.pool.acquire() as sig:
            return sig(feeds)

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        return _in_fixed_batches(self._run, crops, self.batch_size)


class ONNXRunner:
    """An ``.onnx`` file on ONNX Runtime's CPU provider with ``num_threads`` intra-op threads. Safe to call from
    many threads (ONNX Runtime's ``InferenceSession.run`` is)."""

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


class KerasRunner:
    """Runs a serving model as one compiled ``tf.function`` (not ``Model.predict``, which costs ~2.5x per call)."""

    runtime = "keras"

    def __init__(self, serving_model):
        import tensorflow as tf

        self.model = serving_model
        spec = tf.TensorSpec([None, *serving_model.inputs[0].shape[1:]], tf.uint8)
        self._fn = tf.function(lambda x: serving_model(x, training=False), input_signature=[spec], reduce_retracing=True)

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        out = self._fn(crops)
        return {k: v.numpy() for k, v in out.items()}
