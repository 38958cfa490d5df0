"""Video: frames from a file or an iterable, the One Euro filter, track continuity (:func:`track_video`, the loop
behind ``Landmarker.predict_video``) and a jitter metric.

The One Euro filter (Casiez, Roussel, Vogel, CHI 2012) is a first-order low-pass filter whose cutoff rises
with the signal's speed: still landmarks are smoothed hard (no jitter), moving ones follow with little lag.
Here it runs on every coordinate of every point at once, in units of the face size (the diagonal of the
face box), so its parameters do not depend on the resolution or on how close the face is.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError, InvalidImageError

__all__ = ["OneEuroFilter", "iter_frames", "jitter", "box_iou", "track_video"]


class OneEuroFilter:
    """One Euro filter over arrays of any shape.

    Args:
        min_cutoff: cutoff frequency (Hz) at rest; lower = smoother still points (more lag when slow).
        beta: speed coefficient; higher = less lag on fast motion.
        d_cutoff: cutoff (Hz) of the derivative's own low-pass filter.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0):
        for name, v in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            if not float(v) > 0:
                raise InvalidArgumentError(f"{name} must be positive; got {v!r}")
        if float(beta) < 0:
            raise InvalidArgumentError(f"beta must be >= 0; got {beta!r}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self):
        self._x = None
        self._dx = None

    @staticmethod
    def _alpha(cutoff, dt):
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))

    def __call__(self, x, dt: float, scale: float = 1.0) -> np.ndarray:
        """Filter the next sample ``x`` taken ``dt`` seconds after the previous one; speeds are measured in units
        of ``scale`` (e.g. the face size in pixels, so that ``beta`` does not depend on the resolution)."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        if not dt > 0:
            raise InvalidArgumentError(f"dt must be positive; got {dt!r}")
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / float(scale)
        a = 1.0 / (1.0 + (1.0 / (2 * np.pi * cutoff)) / dt)
        self._x = a * x + (1 - a) * self._x
        return self._x.copy()


def iter_frames(video, *, max_frames: int | None = None):
    """``(frames iterator of RGB uint8, fps or None)`` from a video file path or an iterable of frames."""
    if isinstance(video, (str, os.PathLike)):
        import cv2

        p = Path(os.fspath(video))
        if not p.is_file():
            raise InvalidImageError(f"video file not found: {p}")
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise InvalidImageError(f"cannot open video {p} (corrupt file or unsupported codec)")
        fps = cap.get(cv2.CAP_PROP_FPS) or None

        def gen():
            n = 0
            try:
                while max_frames is None or n < max_frames:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    n += 1
                    yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            finally:
                cap.release()
            if n == 0:
                raise InvalidImageError(f"video {p} has no readable frame")

        return gen(), fps
    if isinstance(video, np.ndarray) and video.ndim == 4:
        frames = list(video)
    else:
        try:
            frames = iter(video)
        except TypeError:
            raise InvalidImageError(f"video must be a file path or an iterable of frames; got {type(video).__name__}") from None
    if max_frames is not None:
        import itertools

        frames = itertools.islice(frames, max_frames)
    return iter(frames), None


def jitter(points_per_frame, *, normalize_by=None) -> float:
    """Mean frame-to-frame displacement of every point over a sequence ``(T, K, 2)`` (pixels, or a fraction of
    ``normalize_by`` (a length, e.g. the inter-ocular distance)). On a static scene it measures jitter."""
    p = np.asarray(points_per_frame, np.float64)
    if p.ndim != 3 or p.shape[-1] != 2 or len(p) < 2:
        raise InvalidArgumentError(f"points_per_frame must be (T >= 2, K, 2); got shape {p.shape}")
    d = float(np.nanmean(np.linalg.norm(np.diff(p, axis=0), axis=-1)))
    return d / float(normalize_by) if normalize_by else d


def box_iou(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)
    return inter / union if union > 0 else 0.0


def track_video(lm, video, *, smoothing="one_euro", fps=None, detector="default", min_cutoff=1.0, beta=20.0,
                d_cutoff=1.0, max_frames=None, progress=False) -> list:
    """:meth:`lmkzoo.inference.landmarker.Landmarker.predict_video` of the Landmarker ``lm`` (see there): one tracked
    face per frame, detected in each frame, kept by overlap with the previous one and smoothed by a One Euro filter."""
    from lmkzoo.image_io import as_rgb_uint8

    if smoothing not in ("one_euro", None):
        raise InvalidArgumentError(f"smoothing must be 'one_euro' or None; got {smoothing!r}")
    for key, value in (("fps", fps), ("min_cutoff", min_cutoff), ("beta", beta), ("d_cutoff", d_cutoff),
                       ("max_frames", max_frames)):
        low_ok = value is None or (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
                                   and np.isfinite(value) and (value >= 0 if key == "beta" else value > 0))
        if not low_ok:
            what = {"fps": "a positive frame rate (frames per second) or None (the file's)",
                    "beta": "a non-negative number (1 / face size)", "max_frames": "a positive number or None"}
            raise InvalidArgumentError(f"{key} must be {what.get(key, 'a positive cut-off frequency (Hz)')}; "
                                       f"got {value!r}")
    frames, file_fps = iter_frames(video, max_frames=max_frames)
    fps = float(fps or file_fps or 30.0)
    filt = OneEuroFilter(min_cutoff, beta, d_cutoff) if smoothing else None
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc="frames", unit="frame")
    out, prev = [], None
    for i, frame in enumerate(frames):
        img = as_rgb_uint8(np.asarray(frame), what=f"frame {i}")
        faces = lm._faces_for_image(img, None, None, detector)
        if not faces:
            out.append(None)
            prev = None
            if filt is not None:
                filt.reset()
            continue
        areas = [float(np.prod(np.asarray(b[2:]) - np.asarray(b[:2]))) for b, _ in faces]
        pick = int(np.argmax(areas))
        if prev is not None:
            ious = [box_iou(b, prev) for b, _ in faces]
            if max(ious) > 0.3:
                pick = int(np.argmax(ious))
        chosen = [[faces[pick]]]
        if lm.spec.crop.get("policy", "box") in ("five_point", "five_point_hull"):
            chosen = lm._fill_five_points([img], chosen)
        face = lm._predict_faces([img], chosen)[0][0]
        prev = face.box
        if filt is not None:
            diag = float(np.hypot(face.box[2] - face.box[0], face.box[3] - face.box[1]))
            face.points = filt(face.points, 1.0 / fps, scale=max(diag, 1.0)).astype(np.float32)
        out.append(face)
    return out
