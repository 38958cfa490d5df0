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
import threading
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["Detections", "HaarFaceDetector", "BlazeFaceDetector", "default_detector", "HAAR_CALIBRATION",
           "BLAZEFACE_CALIBRATION"]

#: Haar box (cx, cy, s) → tight 68-point box: centre (cx + dx·s, cy + dy·s), size (sw·s, sh·s).
#: Medians over the 300-W training faces' human annotations (tools/calibrate_detector.py --faces 300w: found
#: 1,870 of 2,012). The first calibration, on the LFW teacher labels (MediaPipe points mapped to iBUG-68, whose jaw
#: runs inside the human one), gave boxes 6-7 % smaller: {"dx": 0.0065, "dy": 0.1682, "sw": 0.8109, "sh": 0.8014}.
HAAR_CALIBRATION = {"dx": 0.0066, "dy": 0.1515, "sw": 0.8672, "sh": 0.8502}


#: BlazeFace box (cx, cy, s) → tight 68-point box, per model (same form as :data:`HAAR_CALIBRATION`); medians over
#: the 300-W training faces (tools/calibrate_detector.py --faces 300w: full range found 1,927 of 2,012, short range
#: all). On the LFW teacher labels: full {"dx": 0.0114, "dy": 0.0934, "sw": 0.8328, "sh": 0.8266}, short
#: {"dx": -0.0018, "dy": 0.0482, "sw": 0.8675, "sh": 0.8620}.
BLAZEFACE_CALIBRATION = {
    "full": {"dx": 0.0059, "dy": 0.1022, "sw": 0.8839, "sh": 0.8656},
    "short": {"dx": 0.0023, "dy": 0.0595, "sw": 0.9421, "sh": 0.9251},
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


#: face side, in input pixels of the full-range model, that tiling aims for: it finds all the dlib faces of 28-30 px in
#: 500 px photos (11 px at its 192 px input) but only a third of 50 px faces packed 10x10 into a 1080x800 photo when
#: they span 16 px; 20 px finds three quarters of those and 95-100 % of less crowded ones (benchmarks/README.md)
_FULL_RANGE_MIN_FACE = 20.0


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resized to ``width`` x ``height``, antialiased when shrinking: halvings first (bilinear at exactly half
    size averages 2x2 blocks), then one bilinear step of at most 2x. Ten times faster than OpenCV's INTER_AREA on
    photos of a few hundred pixels (0.07 vs 0.6-0.9 ms at 250 px), for the same detections."""
    import cv2

    h, w = image.shape[:2]
    while w >= 4 * width and h >= 4 * height:  # leaves between 2x and 4x for the next two steps
        w, h = (w + 1) // 2, (h + 1) // 2
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if w > 2 * width or h > 2 * height:
        w, h = (w + 1) // 2, (h + 1) // 2
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


class _BlazeNet:
    """One BlazeFace interpreter with its tensor indices and anchors (the state an :class:`InterpreterPool` hands
    to one caller at a time)."""

    def __init__(self, interpreter, size: int, anchors: np.ndarray):
        interpreter.allocate_tensors()
        outs = sorted(interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))  # (.., 16) regressors first
        self.interpreter = interpreter
        self.input = interpreter.get_input_details()[0]["index"]
        self.regressors, self.classifiers = outs[0]["index"], outs[1]["index"]
        self.size = size
        self.anchors = anchors
        self.canvas = np.zeros((1, size, size, 3), np.float32)

    def __call__(self, image: np.ndarray):
        """``(regressors (N, 16), logits (N,), scale, (ox, oy))`` of ``image`` letterboxed into the input."""
        size = self.size
        h, w = image.shape[:2]
        scale = size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = _resize(image, nw, nh)
        ox, oy = (size - nw) // 2, (size - nh) // 2
        canvas = self.canvas
        canvas.fill(0.0)
        view = canvas[0, oy:oy + nh, ox:ox + nw]
        np.multiply(resized, np.float32(1 / 127.5), out=view, casting="unsafe")
        view -= np.float32(1.0)
        it = self.interpreter
        it.set_tensor(self.input, canvas)
        it.invoke()
        return it.get_tensor(self.regressors)[0], it.get_tensor(self.classifiers)[0, :, 0], scale, (ox, oy)


class BlazeFaceDetector:
    """MediaPipe BlazeFace on LiteRT: the short-range model for portraits, the full-range one (tiled over large
    images) for everything else.

    The image is letterboxed (aspect kept, zero padding) to a model's square input in [-1, 1]; each anchor's
    offsets (scaled by the input side) give a box and six keypoints (the subject's right eye, left eye, nose
    tip, mouth centre, right and left ear), scores are sigmoids; weighted NMS merges overlaps.

    The default policy (``models="auto"``) first runs the short-range model (128 px input, a third of the full-range
    model's time; MediaPipe FaceMesh's own detector). When the largest face it finds spans at least
    ``portrait_fraction`` of the image's longer side (a portrait or selfie, where it is the right model), that is
    the answer. Otherwise (group photos, small or no faces) the full-range model (192 px) runs, and on an image
    larger than 1.5x the side at which a ``min_face_size`` face still spans 20 of its input pixels (384 px for 40 px
    faces: images over 576 px) it also runs on overlapping tiles, a pyramid of them, each tile side doubling
    the last, with every detection merged by the weighted NMS; tile detections cut by a tile's inner edge are
    dropped (a larger tile or the whole image holds that face). Faces smaller than ``min_face_size`` can still be
    missed (and crowded faces: 75 of 100 faces of 50 px packed into a 1080x800 photo are found), and tiles cost
    time: a 1080x800 photo without a portrait-sized face runs the full-range model 17 times.

    Calls from many threads are safe: each concurrent call gets interpreters of its own.

    Args:
        models: ``"auto"`` (the policy above), or which models to try in order (``("full", "short")``), the next
            running only when the previous found no face (no tiling).
        min_score: detection threshold (MediaPipe: 0.5).
        iou_threshold: weighted-NMS overlap.
        calibration: BlazeFace → face-box mapping per model (:data:`BLAZEFACE_CALIBRATION`).
        num_threads: CPU threads of each interpreter (default: :func:`~lmkzoo.runtimes.default_num_threads`).
        portrait_fraction: ``"auto"`` only: the short-range answer stands when its largest face is at least this
            fraction of the image's longer side.
        min_face_size: ``"auto"`` only: the smallest face side (pixels) that tiling should find on large images; None
            disables tiling.
    """

    def __init__(self, models="auto", *, min_score: float = 0.5, iou_threshold: float = 0.3,
                 calibration=None, num_threads: int | None = None, portrait_fraction: float = 0.25,
                 min_face_size: float | None = 40.0):
        from lmkzoo.runtimes import InterpreterPool, default_num_threads

        auto = isinstance(models, str) and models == "auto"
        order = ("short", "full") if auto else models
        if isinstance(order, str) or not order or any(m not in _BLAZEFACE for m in order):
            raise InvalidArgumentError(f"models must be 'auto' or a non-empty sequence of {sorted(_BLAZEFACE)}; "
                                       f"got {models!r}")
        if not 0.0 < float(min_score) < 1.0:
            raise InvalidArgumentError(f"min_score must be in (0, 1); got {min_score!r}")
        if not 0.0 < float(portrait_fraction) <= 1.0:
            raise InvalidArgumentError(f"portrait_fraction must be in (0, 1]; got {portrait_fraction!r}")
        if min_face_size is not None and not float(min_face_size) > 0:
            raise InvalidArgumentError(f"min_face_size must be a positive number of pixels or None; got {min_face_size!r}")
        self.auto = auto
        self.models = tuple(order)
        self.min_score = float(min_score)
        self._min_logit = float(np.log(self.min_score / (1.0 - self.min_score)))
        self.iou_threshold = float(iou_threshold)
        self.portrait_fraction = float(portrait_fraction)
        self.min_face_size = None if min_face_size is None else float(min_face_size)
        self.calibration = {k: dict(v) for k, v in (calibration or BLAZEFACE_CALIBRATION).items()}
        threads = int(num_threads or default_num_threads())
        self._pools = {}
        for m in self.models:
            file, size, strides, per_layer = _BLAZEFACE[m]
            path = _ASSETS / file
            if not path.is_file():
                raise InvalidArgumentError(f"the BlazeFace model {path} is missing; reinstall lmkzoo")
            anchors = ssd_anchors(size, strides, per_layer)
            self._pools[m] = InterpreterPool(path, num_threads=threads,
                                             setup=lambda it, size=size, anchors=anchors: _BlazeNet(it, size, anchors))

    # ------------------------------------------------------------------------------------------ one pass
    def _pass(self, image: np.ndarray, model: str, origin=(0, 0), inner=None):
        """Raw detections ``(boxes (N, 4), keypoints (N, 6, 2), scores (N,))`` of one model on ``image`` (a tile at
        ``origin`` of the full image), image pixels, before NMS. ``inner``: the tile's edges that are not image
        edges (left, top, right, bottom flags); detections crossing them are dropped."""
        with self._pools[model].acquire() as net:
            reg, logits, scale, (ox, oy) = net(image)
            keep = logits >= self._min_logit
            reg, logits, anchors, size = reg[keep], logits[keep], net.anchors[keep], net.size
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        r = reg.astype(np.float64) / size
        c = r[:, :2] + anchors
        boxes = np.concatenate([c - r[:, 2:4] / 2, c + r[:, 2:4] / 2], axis=1) * size
        kps = (r[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]) * size
        offset = np.array([ox, oy], np.float64)
        boxes = (boxes - np.concatenate([offset, offset])) / scale
        kps = (kps - offset) / scale
        if inner is not None and len(boxes):
            h, w = image.shape[:2]
            tol = 0.05 * (boxes[:, 2:] - boxes[:, :2]).max(axis=1)
            cut = ((inner[0] & (boxes[:, 0] < -tol)) | (inner[1] & (boxes[:, 1] < -tol))
                   | (inner[2] & (boxes[:, 2] > w + tol)) | (inner[3] & (boxes[:, 3] > h + tol)))
            boxes, kps, scores = boxes[~cut], kps[~cut], scores[~cut]
        origin = np.asarray(origin, np.float64)
        return boxes + np.concatenate([origin, origin]), kps + origin, scores

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The tiles ``(x0, y0, x1, y1)`` the full-range model also runs on for an image of this size (``"auto"``
        policy; empty when the whole image is enough): a pyramid of square tiles, the first of side
        ``min_face_size * 192 / 20`` (a ``min_face_size`` face spans 20 input pixels), each level twice the last,
        overlapping by a quarter of their side."""
        if self.min_face_size is None:
            return []
        side = self.min_face_size * _BLAZEFACE["full"][1] / _FULL_RANGE_MIN_FACE
        longest = max(width, height)
        if longest <= 1.5 * side:
            return []
        out = []
        while side < longest:
            t = int(round(side))
            stride = t - t // 4
            xs = range(0, max(width - t, 0) + stride, stride) if width > t else [0]
            ys = range(0, max(height - t, 0) + stride, stride) if height > t else [0]
            for y in ys:
                for x in xs:
                    x0, y0 = min(x, max(width - t, 0)), min(y, max(height - t, 0))
                    tile = (x0, y0, min(x0 + t, width), min(y0 + t, height))
                    if tile not in out:
                        out.append(tile)
            side *= 2
        return out

    def raw(self, image, model: str = "full"):
        """Uncalibrated ``(boxes (N, 4), keypoints (N, 6, 2), scores (N,))`` of one model, image pixels (with the
        full-range model under the ``"auto"`` policy: over the whole image and its :meth:`tiles`)."""
        img = _rgb(image)
        if model not in self._pools:
            raise InvalidArgumentError(f"model must be one of {list(self._pools)}; got {model!r}")
        parts = [self._pass(img, model)]
        if model == "full" and self.auto:
            h, w = img.shape[:2]
            for x0, y0, x1, y1 in self.tiles(w, h):
                inner = np.array([x0 > 0, y0 > 0, x1 < w, y1 < h])
                parts.append(self._pass(img[y0:y1, x0:x1], model, origin=(x0, y0), inner=inner))
        boxes, kps, scores = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return weighted_nms(boxes, kps, scores, self.iou_threshold)

    def _detections(self, model: str, boxes, kps, scores) -> Detections:
        boxes = _calibrate(boxes, self.calibration[model])
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-area)
        return Detections(boxes[order].astype(np.float32), scores[order].astype(np.float32),
                          keypoints=kps[order].astype(np.float32))

    def __call__(self, image) -> Detections:
        img = _rgb(image)
        if self.auto:
            h, w = img.shape[:2]
            short = self.raw(img, "short")
            if len(short[0]):
                side = np.max(short[0][:, 2:] - short[0][:, :2])
                if side >= self.portrait_fraction * max(h, w):
                    return self._detections("short", *short)
            full = self.raw(img, "full")
            if len(full[0]):
                return self._detections("full", *full)
            if len(short[0]):
                return self._detections("short", *short)
        else:
            for m in self.models:
                found = self.raw(img, m)
                if len(found[0]):
                    return self._detections(m, *found)
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


def _rgb(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        import cv2

        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return img


_DEFAULT = None
_DEFAULT_LOCK = threading.Lock()


def default_detector():
    """The detector ``Landmarker.predict`` uses when the caller gives neither boxes nor five points
    (:class:`BlazeFaceDetector`; one per process, safe to share between threads)."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = BlazeFaceDetector()
    return _DEFAULT
