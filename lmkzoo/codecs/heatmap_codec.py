"""Gaussian-heatmap codec (Earp et al. 2021 §2.2): targets, argmax, quarter-offset and DARK sub-pixel decode.

Heatmap ↔ input mapping (lmkzoo's corner convention, stride ``s = input / heatmap``): heatmap pixel
``(i, j)`` covers input pixels ``[j·s, (j+1)·s) x [i·s, (i+1)·s)``, so its centre sits at input
``((j + 0.5)·s, (i + 0.5)·s)``. A landmark at input ``p`` is therefore at heatmap *index* coordinate
``p / s - 0.5`` (index ``j`` is the centre of pixel ``j``), and a decoded index coordinate ``u`` maps back
to ``(u + 0.5)·s``. Encode and decode use exactly this pair, so an exact decode returns the exact input.

* **encode** (TensorFlow, for ``tf.data``; one example ``(K, 2)`` or a batch ``(..., K, 2)``): an
  unnormalised Gaussian ``exp(-d² / 2σ²)`` (peak 1) centred at the sub-pixel position, not rounded to the
  grid (DARK's unbiased encoding), not truncated. ``visible`` is zeroed for points outside the crop.
* **decode** (``call``, keras.ops, batched): per landmark the argmax of the raw heatmap (score = its
  value), then one of

  - ``refine="none"``: the argmax pixel centre;
  - ``refine="quarter"``: a 0.25-pixel shift along x and y towards the larger neighbour (Xiao et al.
    2018, HRNet), for points at least one pixel inside the map;
  - ``refine="dark"`` (default, the paper's choice): distribution-aware refinement (Zhang et al. 2020):
    blur each heatmap with a Gaussian of the target σ (radius ⌈2.5σ⌉: DARK's 11 taps at σ = 2; zero
    padding; rescaled to the original maximum),
    take ``log(max(h, 1e-4))``, and apply one Newton step ``-H⁻¹∇`` of its Taylor expansion at the
    argmax (central differences: ``∇`` with step 1, ``∂²/∂x²`` / ``∂²/∂y²`` with step 2, mixed with step
    1, as DARK's code), for points at least two pixels inside the map whose Hessian is negative definite.
    The step is clipped to ±1 heatmap pixel (a true peak lies within half a pixel of its argmax; the
    clip only guards against degenerate outputs of an untrained network). The 1e-4 floor (DARK: 1e-10)
    keeps the logarithm finite on fp16 GPU delegates; it only touches values far below a peak.

The decode is TFLite-GPU-delegate friendly: the argmax is a row/column one-hot built from REDUCE_MAX,
EQUAL and CAST (:func:`~lmkzoo.codecs.base.first_max_cells`; no ARG_MAX, whose Keras float version does not even convert),
values at the argmax are one-hot dot products, and the blur and the finite differences are dense
per-channel (depthwise, multiplier 1) convolutions with constant kernels: no GATHER, no shrinking
STRIDED_SLICE, no ONE_HOT, no SELECT.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.codecs.base import LandmarkCodec, first_max_cells, gather_cells
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError

__all__ = ["HeatmapCodec", "REFINE_MODES"]

REFINE_MODES = ("none", "quarter", "dark")
_LOG_FLOOR = 1e-4
_MAX_STEP = 1.0


def _gaussian_1d(sigma: float, radius: int) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


@lmkzoo_export
class HeatmapCodec(LandmarkCodec):
    """Gaussian heatmap targets and their sub-pixel decode.

    Args:
        num_points: K.
        input_size: ``(W, H)`` of the network input (crop pixels).
        stride: input pixels per heatmap pixel (2 for Earp et al.'s 192 → 96 baseline); must divide both
            sides of ``input_size``.
        sigma: Gaussian standard deviation in heatmap pixels (2, the SimpleBaseline / HRNet / GluonCV
            default; the paper does not state its value).
        refine: ``"dark"`` (default), ``"quarter"`` or ``"none"`` (see the module docstring).
    """

    output_keys = ("heatmaps",)

    def __init__(self, num_points, input_size=(192, 192), stride: int = 2, sigma: float = 2.0, refine: str = "dark",
                 **kwargs):
        super().__init__(num_points=num_points, input_size=input_size, **kwargs)
        try:
            ok = not isinstance(stride, bool) and int(stride) == stride and int(stride) >= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidArgumentError(f"stride must be a positive integer; got {stride!r}")
        stride = int(stride)
        w, h = self.input_size
        if w % stride or h % stride:
            raise InvalidArgumentError(f"input size {self.input_size} must be a multiple of the heatmap stride {stride}")
        try:
            ok = not isinstance(sigma, bool) and float(sigma) > 0 and math.isfinite(float(sigma))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidArgumentError(f"sigma must be a finite number > 0 heatmap pixels; got {sigma!r}")
        if refine not in REFINE_MODES:
            raise InvalidArgumentError(f"refine must be one of {list(REFINE_MODES)}; got {refine!r}")
        self.stride = stride
        self.sigma = float(sigma)
        self.refine = refine
        self.heatmap_size = (w // stride, h // stride)  # (Wh, Hh)
        wh, hh = self.heatmap_size
        cells = np.arange(wh * hh)
        k = self.num_points
        # validity of the neighbourhoods the refinements read (1 px for quarter, 2 px for DARK)
        margin = 2 if refine == "dark" else 1
        cx, cy = cells % wh, cells // wh
        inside = (cx >= margin) & (cx <= wh - 1 - margin) & (cy >= margin) & (cy <= hh - 1 - margin)
        self._interior = inside.astype(np.float32).reshape(1, -1, 1)

        def dw(kernel_2d):  # (kh, kw) -> depthwise kernel (kh, kw, K, 1)
            kernel_2d = np.asarray(kernel_2d, np.float32)
            return np.tile(kernel_2d[:, :, None, None], (1, 1, k, 1))

        # central differences (cross-correlation kernels)
        self._k_dx = dw([[-0.5, 0.0, 0.5]])
        self._k_dy = dw([[-0.5], [0.0], [0.5]])
        self._k_dxx = dw([[0.25, 0.0, -0.5, 0.0, 0.25]])
        self._k_dyy = dw([[0.25], [0.0], [-0.5], [0.0], [0.25]])
        self._k_dxy = dw([[0.25, 0.0, -0.25], [0.0, 0.0, 0.0], [-0.25, 0.0, 0.25]])
        radius = max(1, math.ceil(2.5 * self.sigma))  # DARK: an 11-tap blur for sigma 2
        g = _gaussian_1d(self.sigma, radius)
        self._k_blur_x = dw(g[None, :])
        self._k_blur_y = dw(g[:, None])

    # ------------------------------------------------------------------------------------------ geometry
    def to_heatmap_coords(self, points):
        """Input (crop) pixels → heatmap index coordinates (``p / s - 0.5``); numpy."""
        return np.asarray(points, dtype=np.float64) / self.stride - 0.5

    def from_heatmap_coords(self, coords):
        """Heatmap index coordinates → input (crop) pixels (``(u + 0.5)·s``); numpy."""
        return (np.asarray(coords, dtype=np.float64) + 0.5) * self.stride

    # ------------------------------------------------------------------------------------------ encode (tf)
    def encode(self, landmarks, visible=None):
        """Targets for ``landmarks`` ``(..., K, 2)`` crop pixels: ``heatmaps`` ``(..., Hh, Wh, K)`` and
        ``visible`` ``(..., K)`` (0 for invisible points and for points outside the crop)."""
        import tensorflow as tf

        p = tf.convert_to_tensor(landmarks, tf.float32)
        if p.shape.rank is not None and (p.shape.rank < 2 or p.shape[-1] != 2
                                         or (p.shape[-2] is not None and p.shape[-2] != self.num_points)):
            raise ShapeMismatchError(f"landmarks must be (..., {self.num_points}, 2); got {p.shape}")
        wh, hh = self.heatmap_size
        mu = p / float(self.stride) - 0.5
        mx, my = tf.unstack(mu, axis=-1)  # (..., K)
        xs = tf.range(wh, dtype=tf.float32)
        ys = tf.range(hh, dtype=tf.float32)
        inv = 1.0 / (2.0 * self.sigma**2)
        gx = tf.exp(-tf.square(xs - mx[..., None]) * inv)  # (..., K, Wh)
        gy = tf.exp(-tf.square(ys - my[..., None]) * inv)  # (..., K, Hh)
        heat = tf.einsum("...ky,...kx->...yxk", gy, gx)
        w, h = self.input_size
        px, py = tf.unstack(p, axis=-1)
        inside = (px >= 0.0) & (px <= float(w)) & (py >= 0.0) & (py <= float(h))
        vis = tf.ones_like(px) if visible is None else tf.cast(visible, tf.float32)
        return {"heatmaps": heat, "visible": vis * tf.cast(inside, tf.float32)}

    # ------------------------------------------------------------------------------------------ decode (keras.ops)
    def _dw(self, x, kernel):
        return ops.depthwise_conv(x, ops.convert_to_tensor(kernel, dtype=x.dtype), strides=1, padding="same")

    def call(self, outputs):
        hm = outputs["heatmaps"] if isinstance(outputs, dict) else outputs
        hm = ops.convert_to_tensor(hm)
        wh, hh = self.heatmap_size
        k = self.num_points
        hw = wh * hh
        flat = ops.reshape(hm, (-1, hw, k))
        gy, gx, oh4 = first_max_cells(hm)
        oh = ops.reshape(oh4, (-1, hw, k))  # (B, HW, K) one-hot of the argmax
        scores = gather_cells(flat, oh)
        if self.refine == "quarter":
            dx = gather_cells(ops.reshape(self._dw(hm, self._k_dx), (-1, hw, k)), oh)
            dy = gather_cells(ops.reshape(self._dw(hm, self._k_dy), (-1, hw, k)), oh)
            ok = gather_cells(ops.convert_to_tensor(self._interior, flat.dtype), oh)

            def quarter(d):
                return 0.25 * (ops.cast(ops.greater(d, 0.0), d.dtype) - ops.cast(ops.less(d, 0.0), d.dtype))

            gx = gx + quarter(dx) * ok
            gy = gy + quarter(dy) * ok
        elif self.refine == "dark":
            ox, oy = self._dark_offsets(hm, oh)
            gx, gy = gx + ox, gy + oy
        s = float(self.stride)
        landmarks = ops.stack([(gx + 0.5) * s, (gy + 0.5) * s], axis=-1)
        return {"landmarks": landmarks, "scores": scores}

    def _dark_offsets(self, hm, oh):
        wh, hh = self.heatmap_size
        k = self.num_points
        hw = wh * hh
        # distribution modulation: Gaussian blur (zero padding), rescaled to the original per-map maximum
        blurred = self._dw(self._dw(hm, self._k_blur_x), self._k_blur_y)
        peak = ops.max(hm, axis=(1, 2), keepdims=True)
        bpeak = ops.max(blurred, axis=(1, 2), keepdims=True)
        pos = ops.cast(ops.greater(bpeak, 1e-12), hm.dtype)  # maps with no positive value are left as they are
        blurred = blurred * (pos * peak / (bpeak * pos + (1.0 - pos)) + (1.0 - pos))
        log_h = ops.log(ops.maximum(blurred, _LOG_FLOOR))

        def at_peak(kernel):
            return gather_cells(ops.reshape(self._dw(log_h, kernel), (-1, hw, k)), oh)

        dx, dy = at_peak(self._k_dx), at_peak(self._k_dy)
        dxx, dyy, dxy = at_peak(self._k_dxx), at_peak(self._k_dyy), at_peak(self._k_dxy)
        det = dxx * dyy - dxy * dxy
        interior = gather_cells(ops.convert_to_tensor(self._interior, hm.dtype), oh)
        # comparisons + CAST + MUL (no SELECT / LOGICAL_AND in the exported graph)
        mask = ops.cast(ops.greater(det, 1e-12), hm.dtype) * ops.cast(ops.less(dxx, 0.0), hm.dtype) * interior
        safe_det = det * mask + (1.0 - mask)
        # -H^-1 g with H = [[dxx, dxy], [dxy, dyy]]
        ox = -(dyy * dx - dxy * dy) / safe_det
        oy = -(dxx * dy - dxy * dx) / safe_det
        ox = ops.clip(ox, -_MAX_STEP, _MAX_STEP) * mask
        oy = ops.clip(oy, -_MAX_STEP, _MAX_STEP) * mask
        return ox, oy

    def get_config(self):
        config = super().get_config()
        config.update({"stride": self.stride, "sigma": self.sigma, "refine": self.refine})
        return config
