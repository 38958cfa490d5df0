"""Built-in face detection that works offline: OpenCV's Haar cascades (shipped inside opencv-python).

Detector boxes follow each detector's own convention (a Haar box starts at the eyebrows and stops near the
mouth). :class:`HaarFaceDetector` converts them to lmkzoo's *face box* convention, the tight box of the 68
iBUG landmarks, with a calibration measured on real faces (``tools/calibrate_detector.py``; numbers in
:data:`HAAR_CALIBRATION`), so every model's crop policy sees the box it was trained around.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["Detections", "HaarFaceDetector", "default_detector", "HAAR_CALIBRATION"]

#: Haar box (cx, cy, s) → tight 68-point box: centre (cx + dx·s, cy + dy·s), size (sw·s, sh·s).
#: Medians over 3,699 LFW teacher-labelled faces (tools/calibrate_detector.py; detection recall 99.1% there).
HAAR_CALIBRATION = {"dx": 0.0065, "dy": 0.1682, "sw": 0.8109, "sh": 0.8014}


@dataclasses.dataclass
class Detections:
    """Faces found in one image: ``boxes`` ``(N, 4)`` (x0, y0, x1, y1, face-box convention), ``scores`` ``(N,)``,
    ``five_points`` ``(N, 5, 2)`` or None. Sorted by box area, largest first."""

    boxes: np.ndarray
    scores: np.ndarray
    five_points: np.ndarray | None = None

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
        c = self.calibration
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        s = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        cx, cy = cx + c["dx"] * s, cy + c["dy"] * s
        hw, hh = c["sw"] * s / 2, c["sh"] * s / 2
        return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)

    def __call__(self, image) -> Detections:
        boxes, weights = self.raw(image)
        if len(boxes) == 0:
            return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
        boxes = self.calibrate(boxes)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-area)
        scores = 1.0 / (1.0 + np.exp(-weights[order]))  # cascade confidence → (0, 1)
        return Detections(boxes[order].astype(np.float32), scores.astype(np.float32))


_DEFAULT = None


def default_detector() -> HaarFaceDetector:
    """The detector ``Landmarker.predict`` uses when the caller gives neither boxes nor five points."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = HaarFaceDetector()
    return _DEFAULT
