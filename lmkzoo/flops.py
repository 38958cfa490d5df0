"""Multiply-adds (MACs) and parameter size of a built Keras model, counted layer by layer.

Counting convention (state it wherever a number from here is quoted):

* **MACs, not FLOPs.** One multiply-accumulate counts once. Most papers that report "FLOPs" for CNNs
  (Earp et al. 2021, PIPNet, MobileNet, ResNet "1.8 GFLOPs") really report MACs; multiply by 2 for
  floating-point operations. :attr:`MacsReport.gmacs` is in units of 1e9.
* Counted per image (the model runs once on a batch of one).
* Layers counted (nested models and sub-layers of custom layers included, each leaf once per call):
  ``Conv1D/2D/3D`` (``out_elements * k * Cin / groups``), ``DepthwiseConv1D/2D`` (``out_elements * k``),
  ``SeparableConv1D/2D`` (depthwise + pointwise), ``Conv1DTranspose/2DTranspose/3DTranspose``
  (``in_elements * k * Cout``: every input value scatters into a ``k * Cout`` window), ``Dense`` on N-D
  inputs (``prod(input.shape[:-1]) * in * units``), ``EinsumDense`` (product of all index sizes of its
  equation) and ``MultiHeadAttention`` (its projections are counted as ``EinsumDense`` layers, plus the two
  attention products ``heads * Tq * Tk * (key_dim + value_dim)``); a custom layer's own products when it
  declares them with an ``own_macs(*call_args)`` method (its sub-layers are counted as themselves).
* Not counted: biases, activations, pooling, element-wise adds, resizing, pixel shuffle, softmax, and
  BatchNormalization unless ``include_batchnorm=True`` (then one MAC per output element: it folds into
  the preceding convolution at inference).
* **Size** is the number of parameters (every weight, BatchNorm moving statistics included, as a saved
  float32 file holds them) times 4 bytes, in MiB (2**20 bytes; :attr:`MacsReport.size_mb`), which is the
  convention that reproduces Earp et al.'s Table 3.

The shapes come from one eager forward pass on zeros (batch 1), during which the ``call`` of every
counted layer is wrapped to record its input and output shapes; so dynamic shapes, nested functional
models and custom layers need no special handling.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["MacsReport", "LayerMacs", "count_macs", "count_params", "param_size_mb"]


@dataclasses.dataclass(frozen=True)
class LayerMacs:
    """One counted call of one layer."""

    name: str
    kind: str
    macs: int
    input_shape: tuple
    output_shape: tuple


@dataclasses.dataclass(frozen=True)
class MacsReport:
    """MACs per image, parameters and float32 size of a model (see the module docstring for the convention)."""

    macs: int
    params: int
    trainable_params: int
    layers: tuple[LayerMacs, ...]
    input_shape: tuple
    include_batchnorm: bool = False

    @property
    def gmacs(self) -> float:
        """MACs in units of 1e9 (what papers usually print as "GFLOPs")."""
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        """Floating-point operations (2 x MACs) in units of 1e9."""
        return 2 * self.macs / 1e9

    @property
    def size_mb(self) -> float:
        """Parameters as float32, in MiB (2**20 bytes)."""
        return param_size_mb(self.params)

    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for layer in self.layers:
            out[layer.kind] = out.get(layer.kind, 0) + layer.macs
        return out

    def summary(self, top: int = 0) -> str:
        lines = [
            f"input {list(self.input_shape)}: {self.gmacs:.3f} GMACs ({self.gflops:.3f} GFLOPs = 2 x MACs), "
            f"{self.params:,} parameters ({self.trainable_params:,} trainable), {self.size_mb:.2f} MiB as float32"
            + (" [BatchNorm counted]" if self.include_batchnorm else "")
        ]
        if top:
            for layer in sorted(self.layers, key=lambda x: -x.macs)[:top]:
                lines.append(f"  {layer.name:<40s} {layer.kind:<20s} {layer.macs / 1e6:10.2f} M  {list(layer.output_shape)}")
        return "\n".join(lines)


def param_size_mb(params: int, bytes_per_param: int = 4) -> float:
    """Size of ``params`` parameters in MiB."""
    return params * bytes_per_param / 2**20


def count_params(model) -> tuple[int, int]:
    """``(all parameters, trainable parameters)`` of a built model."""
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return total, trainable


# ------------------------------------------------------------------------------------------ per-layer rules
def _shape(x) -> tuple:
    return tuple(int(v) for v in x.shape)


def _conv_macs(layer, x, y) -> int:
    import keras

    ks = int(np.prod(layer.kernel_size))
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    cin = x.shape[-1] if channels_last else x.shape[1]
    out_elems = int(np.prod(y.shape[1:]))
    if isinstance(layer, keras.layers.SeparableConv2D) or isinstance(layer, keras.layers.SeparableConv1D):
        dm = int(layer.depth_multiplier)
        spatial = int(np.prod(y.shape[1:-1] if channels_last else y.shape[2:]))
        return spatial * cin * dm * ks + spatial * cin * dm * int(layer.filters)
    if isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.DepthwiseConv1D)):
        return out_elems * ks
    if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv1DTranspose, keras.layers.Conv3DTranspose)):
        in_elems = int(np.prod(x.shape[1:]))
        return in_elems * ks * int(layer.filters)
    groups = int(getattr(layer, "groups", 1) or 1)
    return out_elems * ks * int(cin) // groups


def _einsum_macs(equation: str, a_shape, b_shape) -> int:
    """MACs of ``einsum(equation, a, b)``: the product of the sizes of every index letter."""
    lhs = equation.split("->")[0]
    ta, tb = (t.strip() for t in lhs.split(","))
    if "." in ta or "." in tb:
        raise InvalidArgumentError(f"cannot count MACs of an einsum with ellipses: {equation!r}")
    sizes: dict[str, int] = {}
    for letters, shape in ((ta, a_shape), (tb, b_shape)):
        for ch, n in zip(letters, shape):
            sizes[ch] = int(n)
    return int(math.prod(sizes.values()))


def _mha_attention_macs(layer, args, kwargs) -> int:
    query = args[0] if args else kwargs["query"]
    value = args[1] if len(args) > 1 else kwargs["value"]
    key = kwargs.get("key")
    if key is None and len(args) > 2:
        key = args[2]
    key = value if key is None else key
    heads = int(getattr(layer, "num_heads", getattr(layer, "_num_heads", 1)))
    key_dim = int(getattr(layer, "key_dim", getattr(layer, "_key_dim", 1)))
    value_dim = getattr(layer, "value_dim", getattr(layer, "_value_dim", None))
    value_dim = key_dim if value_dim is None else int(value_dim)
    tq = int(np.prod(query.shape[1:-1]))
    tk = int(np.prod(key.shape[1:-1]))
    return heads * tq * tk * (key_dim + value_dim)


def _kind_and_rule(layer):
    import keras

    L = keras.layers
    conv_types = (L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv1D, L.DepthwiseConv2D, L.SeparableConv1D,
                  L.SeparableConv2D, L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
    if isinstance(layer, conv_types):
        return type(layer).__name__, "conv"
    if isinstance(layer, L.Dense):
        return "Dense", "dense"
    if isinstance(layer, L.EinsumDense):
        return "EinsumDense", "einsum"
    if isinstance(layer, L.MultiHeadAttention):
        return "MultiHeadAttention", "mha"
    if isinstance(layer, L.BatchNormalization):
        return "BatchNormalization", "bn"
    if callable(getattr(layer, "own_macs", None)):  # a custom layer that declares the products it computes itself
        return type(layer).__name__, "own"
    return None, None


def _layer_macs(rule, layer, args, kwargs, out, include_batchnorm) -> tuple[int, tuple, tuple]:
    x = args[0] if args else next(iter(kwargs.values()))
    y = out[0] if isinstance(out, (tuple, list)) else out
    if rule == "conv":
        return _conv_macs(layer, x, y), _shape(x), _shape(y)
    if rule == "dense":
        return int(np.prod(x.shape[:-1])) * int(x.shape[-1]) * int(layer.units), _shape(x), _shape(y)
    if rule == "einsum":
        return _einsum_macs(layer.equation, x.shape, layer.kernel.shape), _shape(x), _shape(y)
    if rule == "mha":
        return _mha_attention_macs(layer, args, kwargs), _shape(x), _shape(y)
    if rule == "own":
        return int(layer.own_macs(*args, **kwargs)), _shape(x), _shape(y)
    if rule == "bn":
        return (int(np.prod(y.shape)) if include_batchnorm else 0), _shape(x), _shape(y)
    return 0, _shape(x), _shape(y)


def _all_layers(model):
    seen, out = set(), []
    stack = [model]
    while stack:
        layer = stack.pop()
        for sub in getattr(layer, "_layers", []) or []:
            if id(sub) not in seen:
                seen.add(id(sub))
                out.append(sub)
                stack.append(sub)
    return out


def count_macs(model, input_shape: Sequence[int] | None = None, *, include_batchnorm: bool = False) -> MacsReport:
    """Count MACs (per image) and parameters of ``model`` (see the module docstring for the rules).

    Args:
        model: a built ``keras.Model`` (functional, nested or subclassed) with one image-like input.
        input_shape: the input shape without the batch dimension; default: the model's own (which must then
            be fully known).
        include_batchnorm: count BatchNormalization as one MAC per output element (default: not counted,
            as it folds into the preceding convolution at inference).
    """
    import keras

    if input_shape is None:
        inputs = getattr(model, "inputs", None)
        if not inputs or len(inputs) != 1:
            raise InvalidArgumentError("count_macs needs input_shape for a model without exactly one symbolic input")
        input_shape = tuple(inputs[0].shape[1:])
    input_shape = tuple(input_shape)
    if any(v is None or int(v) < 1 for v in input_shape):
        raise InvalidArgumentError(f"input_shape must be fully known positive sizes (no batch); got {input_shape!r}")
    records: list[LayerMacs] = []
    patched = []
    for layer in _all_layers(model):
        kind, rule = _kind_and_rule(layer)
        if rule is None:
            continue
        original = layer.call

        def recording_call(*args, __layer=layer, __orig=original, __kind=kind, __rule=rule, **kwargs):
            out = __orig(*args, **kwargs)
            macs, xs, ys = _layer_macs(__rule, __layer, args, kwargs, out, include_batchnorm)
            records.append(LayerMacs(__layer.name, __kind, int(macs), xs, ys))
            return out

        layer.call = recording_call
        patched.append(layer)
    try:
        x = keras.ops.zeros((1, *input_shape), dtype=model.inputs[0].dtype if getattr(model, "inputs", None) else "float32")
        model(x, training=False)
    finally:
        for layer in patched:
            del layer.call  # back to the class method
    total, trainable = count_params(model)
    return MacsReport(
        macs=int(sum(r.macs for r in records)), params=total, trainable_params=trainable, layers=tuple(records),
        input_shape=input_shape, include_batchnorm=include_batchnorm,
    )
