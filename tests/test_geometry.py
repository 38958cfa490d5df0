import numpy as np
import pytest

from lmkzoo import geometry as g
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError


def test_conventions_round_trip():
    p = np.array([[1.0, 1.0], [10.5, 3.25]])
    assert np.allclose(g.from_pts_convention(p), p - 0.5)
    assert np.allclose(g.to_pts_convention(g.from_pts_convention(p)), p)
    assert np.allclose(g.from_center_convention([[0.0, 0.0]]), [[0.5, 0.5]])
    assert np.allclose(g.to_center_convention(g.from_center_convention(p)), p)


def test_points_bbox_and_visibility():
    p = np.array([[1.0, 2.0], [5.0, 3.0], [100.0, -50.0]])
    assert np.allclose(g.points_bbox(p), [1, -50, 100, 3])
    assert np.allclose(g.points_bbox(p, visible=[True, True, False]), [1, 2, 5, 3])


def test_enlarge_and_square_box():
    box = np.array([10.0, 20.0, 30.0, 60.0])  # w 20, h 40, centre (20, 40)
    assert np.allclose(g.enlarge_box(box, 1.5), [5, 10, 35, 70])
    assert np.allclose(g.enlarge_box(box, (1.0, 2.0)), [10, 0, 30, 80])
    assert np.allclose(g.enlarge_box(box, 1.0, shift=(0, 0.1)), [10, 24, 30, 64])
    assert np.allclose(g.square_box(box), [0, 20, 40, 60])
    assert np.allclose(g.square_box(box, "min"), [10, 30, 30, 50])
    batched = g.enlarge_box(np.stack([box, box]), 2.0)
    assert batched.shape == (2, 4)
    with pytest.raises(InvalidArgumentError, match="x1 >= x0"):
        g.enlarge_box([10, 10, 5, 20], 1.2)
    with pytest.raises(ShapeMismatchError, match="4 values"):
        g.square_box([1, 2, 3])
    with pytest.raises(InvalidArgumentError, match="mode"):
        g.square_box(box, "huge")


def test_box_to_affine_maps_corners_and_inverts():
    box = np.array([10.0, 20.0, 110.0, 70.0])
    m = g.box_to_affine(box, (256, 128))
    corners = g.apply_affine(np.array([[10.0, 20.0], [110.0, 70.0], [60.0, 45.0]]), m)
    assert np.allclose(corners, [[0, 0], [256, 128], [128, 64]])
    back = g.affine_to_box(m, (256, 128))
    assert np.allclose(back, box)
    pts = np.random.default_rng(0).uniform(0, 200, (7, 2))
    assert np.allclose(g.apply_affine(g.apply_affine(pts, m), g.invert_affine(m)), pts)
    with pytest.raises(InvalidArgumentError, match="positive width"):
        g.box_to_affine([0, 0, 0, 10], 64)


def test_compose_order_and_batched_apply():
    a = np.array([[2.0, 0, 1], [0, 2.0, 0]])  # scale 2, then +1 in x
    b = np.array([[1.0, 0, 0], [0, 1.0, 5]])  # +5 in y
    p = np.array([[1.0, 1.0]])
    ab = g.compose_affine(a, b)  # a first
    assert np.allclose(g.apply_affine(p, ab), [[3.0, 7.0]])
    assert np.allclose(g.apply_affine(p, g.compose_affine(b, a)), [[3.0, 12.0]])
    ms = np.stack([a, b])
    pts = np.stack([p, p])
    assert np.allclose(g.apply_affine(pts, ms), [[[3.0, 2.0]], [[1.0, 6.0]]])
    assert np.allclose(g.affine_scale(ms), [2.0, 1.0])


def test_umeyama_recovers_similarity_exactly():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    ang, s, t = 0.3, 1.7, np.array([12.0, -4.0])
    r = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = s * src @ r.T + t
    m = g.similarity_umeyama(src, dst)
    assert np.allclose(m[:, :2], s * r, atol=1e-9)
    assert np.allclose(m[:, 2], t, atol=1e-9)
    assert np.allclose(g.apply_affine(src, m), dst)
    # least squares with noise: still close, and never a reflection
    noisy = dst + rng.normal(0, 0.1, dst.shape)
    mn = g.similarity_umeyama(src, noisy)
    assert np.linalg.det(mn[:, :2]) > 0
    assert np.abs(g.apply_affine(src, mn) - noisy).max() < 0.5
    m_noscale = g.similarity_umeyama(src, dst, estimate_scale=False)
    assert np.isclose(g.affine_scale(m_noscale), 1.0)


def test_umeyama_bad_input():
    with pytest.raises(ShapeMismatchError):
        g.similarity_umeyama(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(InvalidArgumentError, match="finite"):
        g.similarity_umeyama(np.array([[0, 0], [1, np.nan]]), np.zeros((2, 2)))
    with pytest.raises(InvalidArgumentError, match="identical"):
        g.similarity_umeyama(np.ones((3, 2)), np.random.rand(3, 2))


def test_warp_affine_keeps_points_on_content():
    # a white pixel at integer index (row 20, col 30) has its centre at (30.5, 20.5) in our convention
    img = np.zeros((64, 64), np.float32)
    img[20, 30] = 1.0
    p = np.array([[30.5, 20.5]])
    m = g.compose_affine(g.box_to_affine([10.0, 5.0, 42.0, 37.0], 96))  # 3x zoom
    out = g.warp_affine(img, m, 96, interpolation="linear")
    q = g.apply_affine(p, m)[0]
    # the warped blob's intensity-weighted centroid (centre convention +0.5) sits on the mapped point
    ys, xs = np.nonzero(out > 1e-6)
    w = out[ys, xs]
    centroid = np.array([(xs * w).sum() / w.sum() + 0.5, (ys * w).sum() / w.sum() + 0.5])
    assert np.allclose(centroid, q, atol=0.05)
    # an identity warp is exact
    assert np.array_equal(g.warp_affine(img, np.array([[1.0, 0, 0], [0, 1.0, 0]]), 64, interpolation="nearest"), img)


def test_rotation_warp_and_inverse_round_trip():
    rng = np.random.default_rng(3)
    img = (rng.uniform(0, 255, (80, 80, 3))).astype(np.uint8)
    c = np.array([40.0, 40.0])
    ang = np.deg2rad(20)
    r = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    m = np.concatenate([r, (c - r @ c)[:, None]], axis=1)
    warped = g.warp_affine(img, m, 80, interpolation="nearest")
    # sample a point and its image: same colour (nearest interpolation, away from borders)
    for x, y in [(40.5, 40.5), (35.5, 44.5), (47.5, 33.5)]:
        qx, qy = g.apply_affine(np.array([[x, y]]), m)[0]
        assert np.array_equal(warped[int(np.floor(qy)), int(np.floor(qx))], img[int(y), int(x)])
    pts = rng.uniform(10, 70, (6, 2))
    assert np.allclose(g.apply_affine(g.apply_affine(pts, m), g.invert_affine(m)), pts)


def test_transform_covariance():
    cov = np.array([[[4.0, 0.0], [0.0, 1.0]]])
    m = np.array([[0.5, 0, 3], [0, 2.0, 1]])
    out = g.transform_covariance(cov, m)
    assert np.allclose(out, [[[1.0, 0], [0, 4.0]]])


def test_five_point_template_and_alignment():
    t = g.five_point_template(192)
    assert t.shape == (5, 2)
    assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0]  # left before right
    assert t[0, 1] < t[2, 1] < t[3, 1]  # eyes above nose above mouth
    # a face that is the template scaled by 2 and shifted aligns back with scale 1/2
    face = t * 2 + np.array([100.0, 50.0])
    m = g.align_five_points(face, 192)
    assert np.allclose(g.apply_affine(face, m), t, atol=1e-9)
    assert np.isclose(g.affine_scale(m), 0.5)
    with pytest.raises(ShapeMismatchError):
        g.align_five_points(np.zeros((4, 2)))


def test_flip_points():
    p = np.array([[10.0, 5.0], [30.0, 6.0], [20.0, 9.0]])
    out = g.flip_points(p, 40, flip_permutation=[1, 0, 2])
    assert np.allclose(out, [[10.0, 6.0], [30.0, 5.0], [20.0, 9.0]])
    assert np.allclose(g.flip_points(g.flip_points(p, 40, [1, 0, 2]), 40, [1, 0, 2]), p)
    with pytest.raises(ShapeMismatchError):
        g.flip_points(p, 40, flip_permutation=[1, 0])
