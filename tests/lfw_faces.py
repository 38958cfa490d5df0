"""Real LFW faces with their 68-point teacher labels, and a predict check shared by the families' tests."""

import csv

import numpy as np

from lmkzoo import geometry, schemes


def teacher_rows(shared_data):
    """The rows of ``lfw_faces/teacher68.csv`` whose face was labelled (``file, ok, x0, y0, ...``)."""
    with open(shared_data / "lfw_faces" / "teacher68.csv") as f:
        return [r for r in list(csv.reader(f))[1:] if r[1] == "1"]


def load_faces(shared_data, rows):
    """RGB images (N, H, W, 3) uint8 and teacher points (N, 68, 2) of ``rows``."""
    import cv2

    images = np.stack([cv2.cvtColor(cv2.imread(str(shared_data / "lfw_faces" / r[0])), cv2.COLOR_BGR2RGB) for r in rows])
    pts = np.array([[float(v) for v in r[2:]] for r in rows], np.float32).reshape(-1, 68, 2)
    return images, pts


def check_five_point_predict_and_flip_test(lm, shared_data, size=192, face_scale=0.8, shift_y=-0.16):
    """``lm`` (a jd106 model with five-point alignment) predicts in image pixels; flip test = mean of the
    crop's prediction and its mirror's, flipped back with the scheme permutation; lists take one set each."""
    images, pts = load_faces(shared_data, teacher_rows(shared_data)[:2])
    fp = schemes.get("ibug68").five_points(pts[0])
    faces = lm.predict(images[0], five_points=[fp])
    assert len(faces) == 1 and faces[0].points.shape == (106, 2) and faces[0].scheme == "jd106"
    assert np.all(np.isfinite(faces[0].points)) and faces[0].covariance is None
    flipped = lm.predict(images[0], five_points=[fp], flip_test=True)[0]
    m = geometry.align_five_points(fp, size, face_scale=face_scale, shift_y=shift_y)
    crop = geometry.warp_affine(images[0], m, size)
    plain = lm.runner(crop[None])["landmarks"][0]
    mirror = lm.runner(crop[None, :, ::-1].copy())["landmarks"][0]
    expected = (plain + geometry.flip_points(mirror, size, schemes.get("jd106").flip_permutation)) / 2
    assert np.allclose(flipped.points, geometry.apply_affine(expected, geometry.invert_affine(m)), atol=1e-3)
    assert np.allclose(faces[0].points, geometry.apply_affine(plain, geometry.invert_affine(m)), atol=1e-3)
    both = lm.predict(list(images), five_points=[[fp], [schemes.get("ibug68").five_points(pts[1])]])
    assert [len(f) for f in both] == [1, 1]
    return faces[0]
