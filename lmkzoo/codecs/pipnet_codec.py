"""PIPNet codec (Jin et al. 2021): grid scores + in-cell offsets + neighbour offsets, and the neighbour merge.

Facts followed exactly (docs/reference_facts.md §A5-A7, jhb86253817/PIPNet):

* Normalised coordinates ``t = p / input_size`` (per axis). Cell ``mu = clip(floor(t * G), 0, G - 1)`` on the
  ``G = input / net_stride`` grid; offset targets ``t * G - mu`` (grid-cell units); neighbour targets
  ``t[nb] * G - mu`` relative to the landmark's own cell.
* Decode: per landmark, the argmax cell of the raw scores (no sigmoid), ``x̂ = (gx + ox) / G``; each landmark
  also votes for its ``C`` neighbours; the merged point is ``(x̂_m + Σ votes for m) / (1 + max_len)`` over
  the *cyclically padded* reverse list of ``m`` (so some votes count twice, as in PIPNet).
* Neighbour tables: from the mean face, ``argsort`` of squared distances, dropping the point itself,
  computed once (:meth:`PIPNetCodec.from_meanface`) and stored in the config, never recomputed at
  inference. Channel ``i * C + j`` of the neighbour maps holds landmark ``i``'s ``j``-th neighbour.

The merge is a constant ``(K·C, K)`` count matrix applied with one matmul, the argmax is
:func:`~lmkzoo.codecs.base.first_max_cells` and the cell lookups are one-hot products, so the decode has no
ARG_MAX, GATHER or SEGMENT ops and runs on the TFLite GPU delegate.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.assets import packaged_meanface, read_meanface  # noqa: F401  (public here too)
from lmkzoo.codecs.base import LandmarkCodec, first_max_cells, gather_cells
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError

__all__ = ["PIPNetCodec", "neighbor_tables", "read_meanface", "packaged_meanface"]


def neighbor_tables(meanface, num_neighbors: int = 10):
    """PIPNet's neighbour tables from a mean face ``(K, 2)``.

    Returns ``(neighbor_indices (K, C), reverse_index1, reverse_index2, max_len)``: for each landmark ``m``
    the (predicting landmark ``i``, neighbour slot ``j``) pairs that vote for it, in order of ``i`` then
    ``j``, padded cyclically to ``max_len`` (the list repeated, then cut), flattened to length ``K * max_len``.
    A landmark that no other landmark votes for gets ``-1`` entries (its own prediction counts for them).
    """
    mf = np.asarray(meanface, dtype=np.float64).reshape(-1, 2)
    k = len(mf)
    if not 1 <= num_neighbors < k:
        raise InvalidArgumentError(f"num_neighbors must be in [1, {k - 1}] for {k} points; got {num_neighbors}")
    d = ((mf[:, None, :] - mf[None, :, :]) ** 2).sum(-1)
    nb = np.argsort(d, axis=1)[:, 1 : num_neighbors + 1]
    reverse = [[] for _ in range(k)]
    for i in range(k):
        for j in range(num_neighbors):
            reverse[nb[i, j]].append((i, j))
    max_len = max(len(r) for r in reverse)
    r1, r2 = [], []
    for r in reverse:
        # a landmark that is nobody's neighbour (possible with few neighbours) gets -1 slots: its own
        # prediction stands in for the missing votes (PIPNet's code would fail on it)
        padded = (r * (max_len // len(r) + 1))[:max_len] if r else [(-1, -1)] * max_len
        r1 += [i for i, _ in padded]
        r2 += [j for _, j in padded]
    return nb.astype(np.int64), np.array(r1, np.int64), np.array(r2, np.int64), int(max_len)


@lmkzoo_export
class PIPNetCodec(LandmarkCodec):
    """PIPNet targets (``encode``) and the batched decode + neighbour merge (``call``).

    Args:
        num_points: K.
        neighbor_indices: ``(K, C)`` neighbour table (see :func:`neighbor_tables`).
        reverse_index1, reverse_index2: flat ``K * max_len`` cyclic-padded reverse tables.
        input_size: ``(W, H)`` of the network input; net_stride: 16, 32, 64 or 128.
        meanface: the normalised mean face the tables came from (kept for reference and re-use).
    """

    output_keys = ("scores", "offset_x", "offset_y", "neighbor_x", "neighbor_y")

    def __init__(self, num_points, neighbor_indices, reverse_index1, reverse_index2, input_size=(256, 256),
                 net_stride: int = 32, meanface=None, **kwargs):
        super().__init__(num_points=num_points, input_size=input_size, **kwargs)
        nb = np.asarray(neighbor_indices, dtype=np.int64)
        if nb.ndim != 2 or nb.shape[0] != self.num_points:
            raise ShapeMismatchError(f"neighbor_indices must be ({self.num_points}, C); got {nb.shape}")
        r1 = np.asarray(reverse_index1, dtype=np.int64)
        r2 = np.asarray(reverse_index2, dtype=np.int64)
        if r1.shape != r2.shape or r1.ndim != 1 or r1.size % self.num_points:
            raise ShapeMismatchError(f"reverse tables must be equal 1-D lists of K*max_len; got {r1.shape}, {r2.shape}")
        if net_stride not in (16, 32, 64, 128):
            raise InvalidArgumentError(f"net_stride must be 16, 32, 64 or 128; got {net_stride!r}")
        w, h = self.input_size
        if w % net_stride or h % net_stride:
            raise InvalidArgumentError(f"input size {self.input_size} must be a multiple of net_stride {net_stride}")
        self.neighbor_indices = nb
        self.reverse_index1 = r1
        self.reverse_index2 = r2
        self.num_neighbors = int(nb.shape[1])
        self.max_len = int(r1.size // self.num_points)
        self.net_stride = int(net_stride)
        self.grid = (w // net_stride, h // net_stride)  # (Gw, Gh)
        self.meanface = None if meanface is None else np.asarray(meanface, dtype=np.float64).reshape(self.num_points, 2)
        # merge matrix: column m counts how often vote (i, j) appears in m's padded reverse list
        m = np.zeros((self.num_points * self.num_neighbors, self.num_points), np.float32)
        own = np.ones(self.num_points, np.float32)
        for idx in range(r1.size):
            if r1[idx] < 0:
                own[idx // self.max_len] += 1.0
            else:
                m[r1[idx] * self.num_neighbors + r2[idx], idx // self.max_len] += 1.0
        self._merge = m
        self._own_weight = own

    @classmethod
    def from_meanface(cls, meanface, num_neighbors: int = 10, input_size=(256, 256), net_stride: int = 32, **kwargs):
        mf = np.asarray(meanface, dtype=np.float64).reshape(-1, 2)
        nb, r1, r2, _ = neighbor_tables(mf, num_neighbors)
        return cls(len(mf), nb, r1, r2, input_size=input_size, net_stride=net_stride, meanface=mf, **kwargs)

    # ------------------------------------------------------------------------------------------ encode (tf)
    def encode(self, landmarks, visible=None, task=None):
        """Compact targets: ``cell`` (K,) int32 = row·Gw + col, ``offsets`` (K, 2), ``neighbor_offsets``
        (K, C, 2), ``visible`` (K,) and ``neighbor_visible`` (K, C) (both ends of a vote visible). Works on
        one example or a batch (leading dims).

        ``task`` (self-training with curriculum, :class:`~lmkzoo.losses.STCLoss`): the example's sample type,
        0 = std, 1 = cls1, 2 = cls2, 3 = cls3 (scalar per example); given, the targets also hold ``task``
        (int32) and the cells of the max-pooled score grids, ``cell_pool1`` and ``cell_pool2`` (K,) int32: the
        pooled cell that covers the landmark's cell, ``floor(mu / 2^l)`` on the ``floor(G / 2^l)`` grid
        (clipped to it, as a 2x2 max pool drops an odd last row / column)."""
        import tensorflow as tf

        p = tf.convert_to_tensor(landmarks, tf.float32)
        gw, gh = self.grid
        w, h = self.input_size
        g = tf.constant([gw, gh], tf.float32)
        t = p / tf.constant([w, h], tf.float32)
        mu = tf.clip_by_value(tf.floor(t * g), 0.0, g - 1.0)
        offsets = t * g - mu
        nb = tf.gather(t, tf.constant(self.neighbor_indices, tf.int32), axis=-2) * g  # (..., K, C, 2)
        nb_off = nb - mu[..., None, :]
        cell = tf.cast(mu[..., 1] * gw + mu[..., 0], tf.int32)
        visible = tf.ones(tf.shape(p)[:-1], tf.float32) if visible is None else tf.cast(visible, tf.float32)
        nb_vis = tf.gather(visible, tf.constant(self.neighbor_indices, tf.int32), axis=-1) * visible[..., None]
        out = {"cell": cell, "offsets": offsets, "neighbor_offsets": nb_off, "visible": visible, "neighbor_visible": nb_vis}
        if task is not None:
            out["task"] = tf.cast(task, tf.int32)
            for level in (1, 2):
                gl = [max(gw >> level, 1), max(gh >> level, 1)]
                ml = tf.clip_by_value(tf.floor(mu / float(2**level)), 0.0, tf.constant(gl, tf.float32) - 1.0)
                out[f"cell_pool{level}"] = tf.cast(ml[..., 1] * gl[0] + ml[..., 0], tf.int32)
        return out

    # ------------------------------------------------------------------------------------------ decode (keras.ops)
    def call(self, outputs):
        k, c = self.num_points, self.num_neighbors
        gw, gh = self.grid
        hw = gw * gh
        # the first maximum in row-major order (torch's argmax over h * W + w), without an ARG_MAX op
        gy, gx, oh = first_max_cells(outputs["scores"])
        oh = ops.reshape(oh, (-1, hw, k))  # (B, HW, K)
        scores = ops.reshape(outputs["scores"], (-1, hw, k))
        ox = gather_cells(ops.reshape(outputs["offset_x"], (-1, hw, k)), oh)
        oy = gather_cells(ops.reshape(outputs["offset_y"], (-1, hw, k)), oh)
        nbx = gather_cells(ops.reshape(outputs["neighbor_x"], (-1, hw, k, c)), oh)  # (B, K, C)
        nby = gather_cells(ops.reshape(outputs["neighbor_y"], (-1, hw, k, c)), oh)
        votes_x = ops.reshape(ops.expand_dims(gx, -1) + nbx, (-1, k * c))
        votes_y = ops.reshape(ops.expand_dims(gy, -1) + nby, (-1, k * c))
        merge = ops.convert_to_tensor(self._merge, dtype=scores.dtype)
        norm = 1.0 / (1.0 + self.max_len)
        w, h = self.input_size
        # grid units -> crop pixels: (cell + offset) / G * input_size = (cell + offset) * stride
        ox, oy = gx + ox, gy + oy
        if np.any(self._own_weight != 1):  # landmarks without voters count their own prediction more
            ox, oy = ox * self._own_weight, oy * self._own_weight
        x = (ox + ops.matmul(votes_x, merge)) * (norm * w / gw)
        y = (oy + ops.matmul(votes_y, merge)) * (norm * h / gh)
        landmarks = ops.stack([x, y], axis=-1)
        return {"landmarks": landmarks, "scores": gather_cells(scores, oh)}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "neighbor_indices": self.neighbor_indices.tolist(),
                "reverse_index1": self.reverse_index1.tolist(),
                "reverse_index2": self.reverse_index2.tolist(),
                "net_stride": self.net_stride,
                "meanface": None if self.meanface is None else self.meanface.round(6).tolist(),
            }
        )
        return config
