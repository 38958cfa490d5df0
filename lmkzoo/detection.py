"""Built-in face detection that works offline.

* :class:`BlazeFaceDetector` (the default): MediaPipe's BlazeFace models, shipped inside lmkzoo
  (``lmkzoo/assets/detectors``, Apache-2.0, see its README), run on the LiteRT interpreter: the full-range
  model (192x192, small faces in group photos) and, when it finds nothing, the short-range one (128x128,
  faces that fill the frame). Measured on the shared faces: every one of the 43 in-the-wild dlib faces with no
  false detection, where OpenCV's Haar cascade finds 39 with 4 false ones, at a fraction of its time
  (``tools/calibrate_detector.py``).
* :class:`HaarFaceDetector`: OpenCV's frontal-face Haar cascade (shipped inside opencv-python).

Detector boxes follow each detector's own convention (a Haar box starts at the eyebrows and stops near the
mouth; BlazeFace's covers brows to chin). Both convert them to lmkzoo's *face box* convention, the tight box of
the 68 iBUG landmarks, with a calibration measured on real faces (``tools/calibrate_detector.py``; numbers in
:data:`HAAR_CALIBRATION` and :data:`BLAZEFACE_CALIBRATION`), so every model's crop policy sees the box it was
trained around.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["Detections", "HaarFaceDetector", "BlazeFaceDetector", "default_detector", "HAAR_CALIBRATION",
           "BLAZEFACE_CALIBRATION"]

#: Haar box (cx, cy, s) → tight 68-point box: centre (cx + dx·s, cy + dy·s), size (sw·s, sh·s).
#: Medians over 3,699 LFW teacher-labelled faces (tools/calibrate_detector.py; detection recall 99.1% there).
HAAR_CALIBRATION = {"dx": 0.0065, "dy": 0.1682, "sw": 0.8109, "sh": 0.8014}


#: BlazeFace box (cx, cy, s) → tight 68-point box, per model (same form as :data:`HAAR_CALIBRATION`); medians over
#: the LFW teacher-labelled faces (tools/calibrate_detector.py: full range found 3,697 / 3,733, short range all)
BLAZEFACE_CALIBRATION = {
    "full": {"dx": 0.0114, "dy": 0.0934, "sw": 0.8328, "sh": 0.8266},
    "short": {"dx": -0.0018, "dy": 0.0482, "sw": 0.8675, "sh": 0.8620},
}


def _calibrate(boxes: np.ndarray, c) -> np.ndarray:
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    s = np.sqrt(np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 0.0))
    cx, cy = cx + c["dx"] * s, cy + c["dy"] * s
    hw, hh = c["sw"] * s / 2, c["sh"] * s / 2
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)


@dataclasses.dataclass
class Detections:
    """Faces found in one image: ``boxes`` ``(N, 4)`` (x0, y0, x1, y1, face-box convention), ``scores`` ``(N,)``,
    ``five_points`` ``(N, 5, 2)`` or None, and the detector's own ``keypoints`` ``(N, P, 2)`` or None (BlazeFace: the
    subject's right eye, left eye, nose tip, mouth centre, right ear, left ear). Sorted by box area, largest first."""

    boxes: np.ndarray
    scores: np.ndarray
    five_points: np.ndarray | None = None
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.boxes)


class HaarFaceDetector:
    """Frontal-face Haar cascade (Viola-Jones) with lmkzoo's box calibration.

    Args:
        cascade: a cascade file name inside ``cv2.data.haarcascades`` or a path.
        scale_factor, min_neighbors: OpenCV ``detectMultiScale`` parameters.
        min_size: smallest face side in pixels (or a fraction of the shorter image side if < 1).
        max_side: images larger than this are downscaled for detection (speed), boxes scaled back.
        calibration: the Haar → tight-landmark-box mapping (:data:`HAAR_CALIBRATION`).
    """

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", *, scale_factor: float = 1.1,
                 min_neighbors: int = 4, min_size: float = 20, max_side: int = 640, calibration=None):
        import cv2

        path = Path(cascade)
        if not path.exists():
            path = Path(cv2.data.haarcascades) / cascade
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise InvalidArgumentError(f"cannot load the Haar cascade {cascade!r} (looked for {path})")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = float(min_size)
        self.max_side = int(max_side)
        self.calibration = dict(HAAR_CALIBRATION if calibration is None else calibration)

    def raw(self, image) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated cascade boxes ``(N, 4)`` in lmkzoo's convention and their neighbour counts."""
        import cv2

        img = np.asarray(image)
        gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        h, w = gray.shape
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            gray = cv2.resize(gray, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        ms = self.min_size * min(h, w) if self.min_size < 1 else self.min_size
        ms = max(8, int(ms * scale))
        rects, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(ms, ms), outputRejectLevels=True
        )
        if len(rects) == 0:
            return np.zeros((0, 4)), np.zeros((0,))
        r = np.asarray(rects, dtype=np.float64) / scale
        boxes = np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], axis=1)
        return boxes, np.asarray(weights, dtype=np.float64).reshape(-1)

    def calibrate(self, boxes: np.ndarray) -> np.ndarray:
        return _calibrate(boxes, self.calibration)

    def __call__(self, image) -> Detections:
        boxes, weights = self.raw(image)
        if len(boxes) == 0:
            return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
        boxes = self.calibrate(boxes)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-area)
        scores = 1.0 / (1.0 + np.exp(-weights[order]))  # cascade confidence → (0, 1)
        return Detections(boxes[order].astype(np.float32), scores.astype(np.float32))


_ASSETS = Path(__file__).resolve().parent / "assets" / "detectors"
#: the two BlazeFace models: file, input side, SSD anchor strides (consecutive equal strides share one grid)
_BLAZEFACE = {
    "full": ("face_detection_full_range_sparse.tflite", 192, (4,), 1),
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
}


def ssd_anchors(size: int, strides, anchors_per_layer: int) -> np.ndarray:
    """Anchor centres ``(N, 2)`` (fractions of the input side) of MediaPipe's SSD anchor layout with fixed-size
    anchors: each run of equal strides is one grid whose cells hold ``anchors_per_layer`` anchors per layer."""
    centres, i = [], 0
    strides = list(strides)
    while i < len(strides):
        stride, n = strides[i], 0
        while i < len(strides) and strides[i] == stride:
            n += anchors_per_layer
            i += 1
        g = size // stride
        yx = (np.stack(np.meshgrid(np.arange(g), np.arange(g), indexing="ij"), -1).reshape(-1, 2) + 0.5) / g
        centres.append(np.repeat(yx[:, ::-1], n, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes, keypoints, scores, iou_threshold: float):
    """MediaPipe's weighted non-maximum suppression: each kept detection is the score-weighted mean of the
    boxes (and keypoints) overlapping the best remaining one by more than ``iou_threshold``."""
    order = np.argsort(-scores)
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    used = np.zeros(len(scores), bool)
    out_b, out_k, out_s = [], [], []
    for i in order:
        if used[i]:
            continue
        lo = np.maximum(boxes[i, :2], boxes[:, :2])
        hi = np.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        iou = inter / np.maximum(area[i] + area - inter, 1e-12)
        group = (iou > iou_threshold) & ~used
        group[i] = True
        used |= group
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((keypoints[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
    if not out_b:
        return np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros((0,))
    return np.stack(out_b), np.stack(out_k), np.asarray(out_s)


class BlazeFaceDetector:
    """MediaPipe BlazeFace (full range, then short range when the first finds nothing) on LiteRT.

    The image is letterboxed (aspect kept, zero padding) to the model's square input in [-1, 1]; each anchor's
    offsets (scaled by the input side) give a box and six keypoints (the subject's right eye, left eye, nose
    tip, mouth centre, right and left ear), scores are sigmoids; weighted NMS merges overlaps.

    Args:
        models: which models to try, in order; the next runs only when the previous found no face.
        min_score: detection threshold (MediaPipe: 0.5).
        iou_threshold: weighted-NMS overlap (MediaPipe: 0.3).
        calibration: per model, the box → tight 68-point box mapping (:data:`BLAZEFACE_CALIBRATION`).
        num_threads: LiteRT threads (default: :func:`lmkzoo.export.runtimes.default_num_threads`).
    """

    def __init__(self, models=("full", "short"), *, min_score: float = 0.5, iou_threshold: float = 0.3,
                 calibration=None, num_threads: int | None = None):
        unknown = [m for m in models if m not in _BLAZEFACE]
        if unknown or not models:
            raise InvalidArgumentError(f"models must be a non-empty sequence of {sorted(_BLAZEFACE)}; got {models!r}")
        if not 0.0 < float(min_score) < 1.0:
            raise InvalidArgumentError(f"min_score must be in (0, 1); got {min_score!r}")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        from lmkzoo.export.runtimes import default_num_threads

        self.models = tuple(models)
        self.min_score = float(min_score)
        self.iou_threshold = float(iou_threshold)
        self.calibration = {k: dict(v) for k, v in (calibration or BLAZEFACE_CALIBRATION).items()}
        threads = int(num_threads or default_num_threads())
        self._nets = {}
        for m in self.models:
            file, size, strides, per_layer = _BLAZEFACE[m]
            path = _ASSETS / file
            if not path.is_file():
                raise InvalidArgumentError(f"the BlazeFace model {path} is missing; reinstall lmkzoo")
            it = Interpreter(model_path=str(path), num_threads=threads)
            it.allocate_tensors()
            outs = sorted(it.get_output_details(), key=lambda d: -int(d["shape"][-1]))  # (.., 16) regressors first
            self._nets[m] = (it, it.get_input_details()[0]["index"], outs[0]["index"], outs[1]["index"], size,
                             ssd_anchors(size, strides, per_layer))

    def raw(self, image, model: str = "full"):
        """Uncalibrated ``(boxes (N, 4), keypoints (N, 6, 2), scores (N,))`` of one model, image pixels."""
        import cv2

        img = np.asarray(image)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        it, inp, reg_i, cls_i, size, anchors = self._nets[model]
        h, w = img.shape[:2]
        scale = size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((size, size, 3), np.float32)
        ox, oy = (size - nw) // 2, (size - nh) // 2
        canvas[oy:oy + nh, ox:ox + nw] = resized.astype(np.float32) / 127.5 - 1.0
        it.set_tensor(inp, canvas[None])
        it.invoke()
        reg = it.get_tensor(reg_i)[0]
        logits = np.clip(it.get_tensor(cls_i)[0, :, 0].astype(np.float64), -100.0, 100.0)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.min_score
        a, r = anchors[keep], reg[keep] / size
        c = r[:, :2] + a
        boxes = np.concatenate([c - r[:, 2:4] / 2, c + r[:, 2:4] / 2], axis=1) * size
        kps = (r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]) * size
        boxes, kps, sc = weighted_nms(boxes.astype(np.float64), kps.astype(np.float64), scores[keep].astype(np.float64),
                                      self.iou_threshold)
        offset = np.array([ox, oy], np.float64)
        boxes = (boxes - np.concatenate([offset, offset])) / scale
        kps = (kps - offset) / scale
        return boxes, kps, sc

    def __call__(self, image) -> Detections:
        for m in self.models:
            boxes, kps, scores = self.raw(image, m)
            if len(boxes):
                boxes = _calibrate(boxes, self.calibration[m])
                area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                order = np.argsort(-area)
                return Detections(boxes[order].astype(np.float32), scores[order].astype(np.float32),
                                  keypoints=kps[order].astype(np.float32))
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


_DEFAULT = None


def default_detector():
    """The detector ``Landmarker.predict`` uses when the caller gives neither boxes nor five points
    (:class:`BlazeFaceDetector`)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = BlazeFaceDetector()
    return _DEFAULT
