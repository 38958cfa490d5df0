"""Real LFW faces with their 68-point teacher labels, and a predict check shared by the families' tests."""

import numpy as np

from lmkzoo import geometry, schemes
from lmkzoo.testing.lfw import examples, load_faces, teacher_rows

__all__ = ["teacher_rows", "load_faces", "examples", "person_split", "example_dataset",
           "check_five_point_predict_and_flip_test"]


def person_split(shared_data, n_train, n_val):
    """Teacher rows split by person (every 8th person held out): ``(train_rows[:n_train], val_rows[:n_val])``."""
    rows = teacher_rows(shared_data)
    people = sorted({r[0].split("/")[0] for r in rows})
    held_out = set(people[::8])
    return ([r for r in rows if r[0].split("/")[0] not in held_out][:n_train],
            [r for r in rows if r[0].split("/")[0] in held_out][:n_val])


def example_dataset(shared_data, rows):
    """``(examples of rows, their points)``."""
    images, pts = load_faces(shared_data, rows)
    return examples(images, pts), pts


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
