"""DETR-style Transformer layers of LOTR (Watchareeruetai et al. 2021, §3.1), written with ``keras.ops``.

* :class:`PositionalMultiHeadAttention`: multi-head scaled dot-product attention in which a positional
  encoding is added to the **query and key inputs only** (``q = W_q (x_q + p_q)``, ``k = W_k (x_k + p_k)``,
  ``v = W_v x_v``), as in DETR (Carion et al. 2020) and LOTR §3.1 ("adds 2D-positional encoding only to the
  query and key in each encoder layer").
* :class:`TransformerEncoderLayer`: MHSA → add & LayerNorm → position-wise FFN (ReLU) → add & LayerNorm
  (post-norm, DETR's default), dropout on the attention weights, the residual branches and the FFN hidden layer.
* :class:`TransformerDecoderLayer`: MHSA over the landmark tokens → add & norm → MHCA (queries: landmark
  tokens; keys: encoder output + 2D positional encoding; values: encoder output) → add & norm → FFN → add & norm.
* :class:`PositionalEncoding2D`: the learnable 2D positional encoding (DETR's learned variant: a row and a
  column embedding of D/2 each, concatenated per pixel), standard-normal initialisation (§4.3).
* :class:`LearnedEmbedding`: a learnable ``(length, dim)`` table: the landmark queries, N(0, 1e-4²) (§4.3).

Exported graphs (TFLite, ONNX) see only FULLY_CONNECTED, RESHAPE, TRANSPOSE, BATCH_MATMUL, SOFTMAX, ADD, MUL,
MEAN and the LayerNorm arithmetic: no GATHER, no shrinking STRIDED_SLICE, no BROADCAST_TO, so the LiteRT GPU
accelerator places every op (tests/test_lotr.py). Heads are laid out as ``(B, heads, T, D / heads)`` through a
RESHAPE and a TRANSPOSE; with a fixed batch of 1 (GPU exports) every tensor is at most 4-D.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError

__all__ = ["PositionalMultiHeadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "LearnedEmbedding",
           "PositionalEncoding2D", "LAYER_NORM_EPSILON"]

#: PyTorch's / MXNet Gluon's LayerNorm epsilon
LAYER_NORM_EPSILON = 1e-5


def _check_dims(dim, num_heads):
    if int(dim) != dim or int(dim) < 1:
        raise InvalidArgumentError(f"dim must be a positive integer; got {dim!r}")
    if int(num_heads) != num_heads or int(num_heads) < 1 or int(dim) % int(num_heads):
        raise InvalidArgumentError(f"num_heads must be a positive divisor of dim={dim}; got {num_heads!r}")


def check_rate(rate, name: str = "dropout"):
    """A dropout rate: a real number in [0, 1), else an :class:`InvalidArgumentError` naming ``name``."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
        raise InvalidArgumentError(f"{name} must be in [0, 1); got {rate!r}")


def _add(x, pos):
    return x if pos is None else x + pos


@lmkzoo_export
class PositionalMultiHeadAttention(keras.layers.Layer):
    """Multi-head attention with positional encodings added to queries and keys, never to values.

    ``call(query (B, T, D), key (B, S, D), value (B, S, D), query_pos=None, key_pos=None)`` → ``(B, T, D)``;
    ``query_pos`` / ``key_pos`` broadcast against ``query`` / ``key`` (e.g. ``(1, S, D)``).

    Args:
        dim: model width D (inputs and output).
        num_heads: heads; each attends in ``D / num_heads`` dimensions.
        dropout: dropout on the attention weights (training only).
        kernel_initializer: of the four projections (LOTR: He's method); biases start at 0.
    Sub-layers: ``query``, ``key``, ``value``, ``output`` (Dense D → D, with bias).
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        _check_dims(dim, num_heads)
        check_rate(dropout)
        self.dim = int(dim)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.head_dim = self.dim // self.num_heads

        def dense(name):
            return keras.layers.Dense(self.dim, kernel_initializer=keras.initializers.get(kernel_initializer),
                                      bias_initializer="zeros", name=name)

        self.query_dense = dense("query")
        self.key_dense = dense("key")
        self.value_dense = dense("value")
        self.output_dense = dense("output")
        self.attention_dropout = keras.layers.Dropout(self.dropout, name="attention_dropout")

    def build(self, query_shape):
        for layer in (self.query_dense, self.key_dense, self.value_dense, self.output_dense):
            layer.build((None, None, self.dim))
        self.built = True

    def _split_heads(self, x, length):
        x = ops.reshape(x, (-1, length, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))  # (B, heads, length, head_dim)

    def attention_weights(self, query, key, query_pos=None, key_pos=None):
        """``(B, heads, T, S)`` softmax attention weights (before dropout)."""
        t, s = query.shape[1], key.shape[1]
        q = self._split_heads(self.query_dense(_add(query, query_pos)), t) * (1.0 / math.sqrt(self.head_dim))
        k = self._split_heads(self.key_dense(_add(key, key_pos)), s)
        return ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), axis=-1)

    def call(self, query, key, value, query_pos=None, key_pos=None, training=None):
        t, s = query.shape[1], key.shape[1]
        weights = self.attention_dropout(self.attention_weights(query, key, query_pos, key_pos), training=training)
        v = self._split_heads(self.value_dense(value), s)
        context = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))  # (B, T, heads, head_dim)
        return self.output_dense(ops.reshape(context, (-1, t, self.dim)))

    def own_macs(self, query, key, *args, **kwargs) -> int:
        """Multiply-adds of the two attention products per example (QKᵀ and weights·V; the four projections are
        Dense sub-layers, counted on their own by :func:`lmkzoo.flops.count_macs`)."""
        return 2 * int(query.shape[1]) * int(key.shape[1]) * self.dim

    def compute_output_shape(self, query_shape, *args, **kwargs):
        return tuple(query_shape[:-1]) + (self.dim,)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads, "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


class _TransformerLayer(keras.layers.Layer):
    """Shared parts: the position-wise FFN (D → ffn_dim ReLU → D), dropouts and LayerNorms."""

    num_norms = 2

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.1, kernel_initializer="he_normal",
                 epsilon: float = LAYER_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        _check_dims(dim, num_heads)
        check_rate(dropout)
        if int(ffn_dim) != ffn_dim or int(ffn_dim) < 1:
            raise InvalidArgumentError(f"ffn_dim must be a positive integer; got {ffn_dim!r}")
        self.dim, self.num_heads, self.ffn_dim = int(dim), int(num_heads), int(ffn_dim)
        self.dropout = float(dropout)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        init = keras.initializers.serialize(self.kernel_initializer)
        self.ffn1 = keras.layers.Dense(self.ffn_dim, activation="relu", kernel_initializer=keras.initializers.get(init),
                                       name="ffn1")
        self.ffn2 = keras.layers.Dense(self.dim, kernel_initializer=keras.initializers.get(init), name="ffn2")
        self.ffn_dropout = keras.layers.Dropout(self.dropout, name="ffn_dropout")
        self.norms = [keras.layers.LayerNormalization(epsilon=self.epsilon, name=f"norm{i + 1}")
                      for i in range(self.num_norms)]
        self.residual_dropouts = [keras.layers.Dropout(self.dropout, name=f"dropout{i + 1}")
                                  for i in range(self.num_norms)]

    def _attention(self, name):
        return PositionalMultiHeadAttention(self.dim, self.num_heads, self.dropout,
                                            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                                            name=name)

    def _build_common(self):
        self.ffn1.build((None, None, self.dim))
        self.ffn2.build((None, None, self.ffn_dim))
        for norm in self.norms:
            norm.build((None, None, self.dim))

    def _residual(self, i, x, branch, training):
        return self.norms[i](x + self.residual_dropouts[i](branch, training=training))

    def _ffn(self, x, training):
        return self.ffn2(self.ffn_dropout(self.ffn1(x), training=training))

    def compute_output_shape(self, x_shape, *args, **kwargs):
        return tuple(x_shape)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads, "ffn_dim": self.ffn_dim,
                "dropout": self.dropout, "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@lmkzoo_export
class TransformerEncoderLayer(_TransformerLayer):
    """``x ← norm1(x + MHSA(q = k = x + pos, v = x)); x ← norm2(x + FFN(x))`` (post-norm, DETR).

    ``call(x (B, S, D), pos=None)`` with ``pos`` broadcasting to ``x`` (the 2D positional encoding, ``(1, S, D)``).
    """

    num_norms = 2

    def __init__(self, dim, num_heads, ffn_dim, dropout=0.1, **kwargs):
        super().__init__(dim, num_heads, ffn_dim, dropout, **kwargs)
        self.self_attention = self._attention("self_attention")

    def build(self, x_shape):
        self.self_attention.build((None, None, self.dim))
        self._build_common()
        self.built = True

    def call(self, x, pos=None, training=None):
        x = self._residual(0, x, self.self_attention(x, x, x, query_pos=pos, key_pos=pos, training=training), training)
        return self._residual(1, x, self._ffn(x, training), training)


@lmkzoo_export
class TransformerDecoderLayer(_TransformerLayer):
    """LOTR's decoder layer (§3.1): MHSA over the landmark tokens, MHCA into the encoder output, FFN.

    ``call(x (B, N, D), memory (B, S, D), memory_pos=None, query_pos=None)``::

        x ← norm1(x + MHSA(q = k = x + query_pos, v = x))
        x ← norm2(x + MHCA(q = x + query_pos, k = memory + memory_pos, v = memory))
        x ← norm3(x + FFN(x))

    LOTR feeds the learnable landmark queries as ``x`` and no ``query_pos`` (the queries are the decoder's
    input, §3.1); ``query_pos`` is there for DETR's layout (zero input, queries as positional encoding).
    """

    num_norms = 3

    def __init__(self, dim, num_heads, ffn_dim, dropout=0.1, **kwargs):
        super().__init__(dim, num_heads, ffn_dim, dropout, **kwargs)
        self.self_attention = self._attention("self_attention")
        self.cross_attention = self._attention("cross_attention")

    def build(self, x_shape):
        self.self_attention.build((None, None, self.dim))
        self.cross_attention.build((None, None, self.dim))
        self._build_common()
        self.built = True

    def call(self, x, memory, memory_pos=None, query_pos=None, training=None):
        x = self._residual(0, x, self.self_attention(x, x, x, query_pos=query_pos, key_pos=query_pos, training=training),
                           training)
        x = self._residual(1, x, self.cross_attention(x, memory, memory, query_pos=query_pos, key_pos=memory_pos,
                                                      training=training), training)
        return self._residual(2, x, self._ffn(x, training), training)


@lmkzoo_export
class LearnedEmbedding(keras.layers.Layer):
    """A learnable ``(length, dim)`` table, initialised ``N(0, stddev²)``.

    ``call(reference)`` returns ``(1, length, dim)``, or, with ``batch_broadcast=True``, ``(B, length, dim)``
    with B the batch of ``reference`` (any rank >= 2). The batch copy adds ``0 · mean(reference)`` per
    example (MEAN, MUL, ADD): no SHAPE / BROADCAST_TO ops, which fixed-shape GPU delegates reject.

    Args:
        length, dim: table shape (tokens x width).
        stddev: initialisation standard deviation (LOTR: 1 for the positional encoding, 1e-4 for the queries).
    Weight: ``embeddings``.
    """

    def __init__(self, length: int, dim: int, stddev: float = 1.0, batch_broadcast: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(length) < 1 or int(dim) < 1:
            raise InvalidArgumentError(f"length and dim must be positive; got length={length!r}, dim={dim!r}")
        if not float(stddev) > 0:
            raise InvalidArgumentError(f"stddev must be > 0; got {stddev!r}")
        self.length, self.dim = int(length), int(dim)
        self.stddev = float(stddev)
        self.batch_broadcast = bool(batch_broadcast)

    def build(self, reference_shape=None):
        self.embeddings = self.add_weight(shape=(self.length, self.dim), name="embeddings",
                                          initializer=keras.initializers.RandomNormal(stddev=self.stddev))
        self.built = True

    def call(self, reference):
        table = ops.expand_dims(ops.convert_to_tensor(self.embeddings), 0)
        if not self.batch_broadcast:
            return table
        axes = tuple(range(1, len(reference.shape)))
        zero = ops.mean(reference, axis=axes, keepdims=True) * 0.0  # (B, 1, ...)
        return table + ops.reshape(zero, (-1, 1, 1))

    def compute_output_shape(self, reference_shape):
        return ((reference_shape[0] if self.batch_broadcast else 1), self.length, self.dim)

    def get_config(self):
        return {**super().get_config(), "length": self.length, "dim": self.dim, "stddev": self.stddev,
                "batch_broadcast": self.batch_broadcast}


@lmkzoo_export
class PositionalEncoding2D(keras.layers.Layer):
    """Learnable 2D positional encoding of an ``H x W`` token grid (row-major tokens), DETR's learned layout.

    ``pos[y·W + x] = concat(column[x], row[y])`` with ``column`` ``(W, D/2)`` and ``row`` ``(H, D/2)`` learnable
    and initialised ``N(0, stddev²)`` (LOTR: standard normal, §4.3). ``call(reference)`` returns
    ``(1, H·W, D)`` (it depends on the weights only: exports fold it into one constant).

    The separable layout has ``(H + W)·D/2`` parameters; LOTR's Table 3 leaves the same Transformer budget for
    6x6 and 24x24 token grids, which rules out a full ``(H·W, D)`` table (it would add 34,560 parameters to
    LOTR-M+ at D = 64 and no Table 3 row shows them).

    Weights: ``row_embeddings`` ``(H, D/2)``, ``column_embeddings`` ``(W, D/2)``.
    """

    def __init__(self, height: int, width: int, dim: int, stddev: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if int(height) < 1 or int(width) < 1:
            raise InvalidArgumentError(f"height and width must be positive; got {height!r} x {width!r}")
        if int(dim) < 2 or int(dim) % 2:
            raise InvalidArgumentError(f"dim must be a positive even number (row and column halves); got {dim!r}")
        if not float(stddev) > 0:
            raise InvalidArgumentError(f"stddev must be > 0; got {stddev!r}")
        self.height, self.width, self.dim = int(height), int(width), int(dim)
        self.stddev = float(stddev)

    def build(self, reference_shape=None):
        init = keras.initializers.RandomNormal(stddev=self.stddev)
        half = self.dim // 2
        self.row_embeddings = self.add_weight(shape=(self.height, half), name="row_embeddings", initializer=init)
        self.column_embeddings = self.add_weight(shape=(self.width, half), name="column_embeddings", initializer=init)
        self.built = True

    def encoding(self):
        """``(H·W, D)`` positional encodings, row-major."""
        # tiled with CONCATENATION + RESHAPE (the converter folds them into one constant; it leaves a large
        # BROADCAST_TO in the graph, and the GPU accelerator rejects BROADCAST_TO)
        h, w, half = self.height, self.width, self.dim // 2
        col = ops.convert_to_tensor(self.column_embeddings)
        row = ops.convert_to_tensor(self.row_embeddings)
        cols = ops.concatenate([col] * h, axis=0) if h > 1 else col  # token y·W + x → column[x]
        rows = ops.reshape(ops.concatenate([row] * w, axis=1) if w > 1 else row, (h * w, half))  # → row[y]
        return ops.concatenate([cols, rows], axis=-1)

    def call(self, reference=None):
        return ops.expand_dims(self.encoding(), 0)

    def compute_output_shape(self, reference_shape=None):
        return (1, self.height * self.width, self.dim)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "dim": self.dim,
                "stddev": self.stddev}
