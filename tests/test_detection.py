"""Built-in face detection: BlazeFace (default) against OpenCV's Haar cascade on the shared in-the-wild faces."""

import csv

import numpy as np
import pytest

from lmkzoo.detection import (
    BLAZEFACE_CALIBRATION,
    BlazeFaceDetector,
    Detections,
    HaarFaceDetector,
    default_detector,
    ssd_anchors,
    weighted_nms,
)
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.geometry import from_pts_convention
from lmkzoo.image_io import read_image
from lmkzoo.inference.tracking import box_iou

SAMPLE = "lmkzoo/assets/samples/astronaut.jpg"


def _dlib_faces(shared_data):
    folder = shared_data / "faces68_dlib"
    faces = {}
    with open(folder / "faces.csv") as f:
        for row in csv.DictReader(f):
            lines = (folder / row["pts_file"]).read_text().split("{")[1].split("}")[0].split()
            pts = from_pts_convention(np.array(lines, float).reshape(-1, 2))
            faces.setdefault(row["image"], []).append(np.concatenate([pts.min(0), pts.max(0)]))
    return {name: (read_image(folder / name), boxes) for name, boxes in faces.items()}


def _match(dets, tight_boxes):
    """(found, false): a reference face is found by a detection whose centre lies inside its tight box."""
    used = set()
    for t in tight_boxes:
        for i, b in enumerate(dets.boxes):
            c = (b[:2] + b[2:]) / 2
            if i not in used and t[0] <= c[0] <= t[2] and t[1] <= c[1] <= t[3]:
                used.add(i)
                break
    return len(used), len(dets.boxes) - len(used)


def test_blazeface_finds_every_dlib_face_and_beats_haar(shared_data):
    faces = _dlib_faces(shared_data)
    total = sum(len(b) for _, b in faces.values())
    scores = {}
    for name, det in (("blazeface", default_detector()), ("haar", HaarFaceDetector())):
        found = false = 0
        ious = []
        for img, boxes in faces.values():
            d = det(img)
            f, x = _match(d, boxes)
            found, false = found + f, false + x
            for t in boxes:
                ious.append(max([box_iou(b, t) for b in d.boxes], default=0.0))
        scores[name] = (found, false, float(np.median(ious)))
    print(f"\n  {total} dlib faces: " + ", ".join(f"{k} found {v[0]}, false {v[1]}, median IoU {v[2]:.2f}" for k, v in scores.items()))
    assert isinstance(default_detector(), BlazeFaceDetector)
    assert scores["blazeface"][0] == total and scores["blazeface"][1] == 0
    assert scores["blazeface"][0] >= scores["haar"][0]
    # calibrated boxes land on the tight 68-point boxes the models are cropped around
    assert scores["blazeface"][2] > 0.6


def test_sample_photo_one_face_with_ordered_keypoints():
    img = read_image(SAMPLE)
    d = default_detector()(img)
    assert isinstance(d, Detections) and len(d) == 1 and d.scores[0] > 0.8
    kp = d.keypoints[0]  # subject's right eye, left eye, nose tip, mouth centre, right ear, left ear
    assert kp[0, 0] < kp[1, 0]  # the subject's right eye is on the image left
    assert kp[2, 1] > kp[:2, 1].max() and kp[3, 1] > kp[2, 1]  # nose below the eyes, mouth below the nose
    b = d.boxes[0]
    assert b[0] < kp[0, 0] < kp[1, 0] < b[2] and b[1] < kp[:2, 1].min() and kp[3, 1] < b[3]
    gray = default_detector()(img.mean(axis=2).astype(np.uint8))
    assert len(gray) == 1 and box_iou(gray.boxes[0], b) > 0.8


def test_no_face_gives_empty_detections():
    d = default_detector()(np.full((200, 300, 3), 127, np.uint8))
    assert len(d) == 0 and d.boxes.shape == (0, 4)


def test_anchor_layout_and_weighted_nms():
    short = ssd_anchors(128, (8, 16, 16, 16), 2)
    assert short.shape == (896, 2)  # 16x16x2 + 8x8x6
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[1], short[0])
    assert np.allclose(short[512], [0.5 / 8, 0.5 / 8]) and np.allclose(short[2], [1.5 / 16, 0.5 / 16])
    assert ssd_anchors(192, (4,), 1).shape == (2304, 2)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    kps = np.zeros((3, 6, 2))
    kps[1] += 1
    b, k, s = weighted_nms(boxes, kps, np.array([0.9, 0.3, 0.8]), 0.3)
    assert len(b) == 2 and np.allclose(s, [0.9, 0.8])
    assert np.allclose(b[0], [0.25, 0, 10.25, 10])  # score-weighted mean of the two overlapping boxes
    assert np.allclose(k[0], 0.25)


def test_detector_bad_input():
    with pytest.raises(InvalidArgumentError, match="models must be"):
        BlazeFaceDetector(models=("medium",))
    with pytest.raises(InvalidArgumentError, match="min_score"):
        BlazeFaceDetector(min_score=1.5)
    assert set(BLAZEFACE_CALIBRATION) == {"full", "short"}


@pytest.mark.parametrize("name", ["heatmap_mnv2_025", "laplacekl_rcn", "lotr_m"])
@pytest.mark.parametrize("detector", ["default", "haar"])
def test_aligned_families_predict_from_the_detector(name, detector):
    """Families that crop on five points (heatmap, LOTR) or their hull (LaplaceKL) take the detector's boxes: the
    embedded default model supplies the five points, so the result is what those five points give."""
    import keras

    import lmkzoo

    keras.utils.set_random_seed(0)
    lm = lmkzoo.load(name, weights=None)
    img = read_image(SAMPLE)
    det = default_detector() if detector == "default" else HaarFaceDetector()
    boxes = det(img).boxes
    faces = lm.predict(img, detector=det)
    assert len(faces) == len(boxes) == 1
    assert faces[0].points.shape == (lm.scheme.num_points, 2) and np.all(np.isfinite(faces[0].points))
    helper = lmkzoo.load()
    five = helper.scheme.five_points(helper.predict(img, boxes=boxes)[0].points)
    np.testing.assert_allclose(faces[0].points, lm.predict(img, five_points=[five])[0].points, atol=1e-3)
