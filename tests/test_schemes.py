import csv

import numpy as np
import pytest

from lmkzoo import schemes
from lmkzoo.errors import InvalidArgumentError, SchemeMismatchError, UnknownSchemeError

ALL = schemes.names()


def _swap_lr(name: str) -> str:
    return name.replace("left", "\0").replace("right", "left").replace("\0", "right")


def test_packaged_schemes_and_sizes():
    sizes = {"ibug68": 68, "wflw98": 98, "jd106": 106, "cofw29": 29, "aflw19": 19, "menpo39": 39, "five_point": 5}
    assert set(sizes) <= set(ALL)
    for name, k in sizes.items():
        s = schemes.get(name)
        assert s.num_points == k == len(s.names) == len(s.flip_permutation)


@pytest.mark.parametrize("name", ["ibug68", "wflw98", "jd106", "cofw29", "aflw19", "menpo39", "five_point"])
def test_flip_permutation_is_involution_and_swaps_names(name):
    s = schemes.get(name)
    perm = np.array(s.flip_permutation)
    assert np.array_equal(perm[perm], np.arange(s.num_points))
    for i, j in enumerate(perm):
        # the point a flip moves into slot i has i's name with left and right exchanged
        assert s.names[j] == _swap_lr(s.names[i]), (name, i, s.names[i], j, s.names[j])
    # flipping twice is the identity on coordinates too
    p = np.random.default_rng(0).uniform(0, 100, (s.num_points, 2))
    assert np.allclose(s.flip(s.flip(p, 100), 100), p)


def test_left_right_pairs_from_the_literature():
    assert schemes.get("ibug68").flip_permutation[36] == 45
    assert schemes.get("ibug68").flip_permutation[48] == 54
    assert schemes.get("ibug68").flip_permutation[8] == 8
    assert schemes.get("wflw98").flip_permutation[60] == 72
    assert schemes.get("wflw98").flip_permutation[96] == 97
    assert schemes.get("jd106").flip_permutation[66] == 79
    assert schemes.get("jd106").flip_permutation[104] == 105
    assert schemes.get("cofw29").flip_permutation[8] == 9
    assert schemes.get("aflw19").flip_permutation[6] == 11


def test_nme_norm_indices():
    assert schemes.get("ibug68").nme_norm_indices["inter_ocular"] == ((36,), (45,))
    assert schemes.get("ibug68").nme_norm_indices["inter_pupil"] == (tuple(range(36, 42)), tuple(range(42, 48)))
    assert schemes.get("wflw98").nme_norm_indices["inter_ocular"] == ((60,), (72,))
    assert schemes.get("wflw98").nme_norm_indices["inter_pupil"] == ((96,), (97,))
    assert schemes.get("jd106").nme_norm_indices["inter_ocular"] == ((66,), (79,))
    assert schemes.get("cofw29").nme_norm_indices["inter_ocular"] == ((8,), (9,))
    assert schemes.get("cofw29").nme_norm_indices["inter_pupil"] == ((16,), (17,))
    assert schemes.get("aflw19").nme_norm_indices["inter_ocular"] == ((6,), (11,))
    with pytest.raises(InvalidArgumentError, match="defines no 'inter_ocular'"):
        schemes.get("menpo39").norm_distance(np.zeros((39, 2)), "inter_ocular")


def test_norm_distance_and_five_points_hand_values():
    s = schemes.get("ibug68")
    p = np.zeros((68, 2))
    p[36] = [10, 20]
    p[45] = [40, 60]
    assert np.isclose(s.norm_distance(p, "inter_ocular"), 50.0)
    p[36:42] = [[10, 20]] * 6
    p[42:48] = [[40, 20]] * 6
    p[30] = [25, 40]
    p[48], p[54] = [15, 60], [35, 60]
    assert np.isclose(s.norm_distance(p, "inter_pupil"), 30.0)
    assert np.allclose(s.five_points(p), [[10, 20], [40, 20], [25, 40], [15, 60], [35, 60]])
    batch = np.stack([p, p * 2])
    assert s.five_points(batch).shape == (2, 5, 2)
    assert np.allclose(s.norm_distance(batch, "inter_pupil"), [30, 60])


def test_skeleton_is_valid_and_drawable():
    for name in ALL:
        s = schemes.get(name)
        for i, j in s.skeleton:
            assert 0 <= i < s.num_points and 0 <= j < s.num_points and i != j
    # ibug68 eyes are closed loops, the jaw an open chain
    edges = set(schemes.get("ibug68").skeleton)
    assert (41, 36) in edges and (16, 0) not in edges and (30, 31) not in edges


def _teacher_mean_face(shared):
    path = shared / "lfw_faces" / "teacher68.csv"
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["face_found"] == "1":
                rows.append([float(r[f"{a}{i}"]) for i in range(68) for a in "xy"])
    return np.asarray(rows).reshape(-1, 68, 2).mean(axis=0)


def test_ibug68_semantics_on_real_faces(shared_data):
    """Names say image-left/right: check them on the mean of 3,733 real LFW faces (teacher labels)."""
    s = schemes.get("ibug68")
    mean = _teacher_mean_face(shared_data)
    cx = (mean[36, 0] + mean[45, 0]) / 2
    for i, n in enumerate(s.names):
        if n.startswith("left_"):
            assert mean[i, 0] < cx, n
        if n.startswith("right_"):
            assert mean[i, 0] > cx, n
    assert mean[30, 1] > mean[36, 1] and mean[57, 1] > mean[30, 1] and mean[8, 1] > mean[57, 1]
    # a real mean face is nearly symmetric: flipping it about its own axis moves no point by 10% of its width
    flipped = s.flip(mean, 2 * cx)
    assert np.abs(flipped - mean).max() < 0.1 * (mean[:, 0].max() - mean[:, 0].min())
    assert np.abs(flipped - mean).mean() < 2.0


@pytest.mark.parametrize("src", ["wflw98", "jd106"])
def test_conversions_to_ibug68(src):
    s, d = schemes.get(src), schemes.get("ibug68")
    m = schemes.conversion_matrix(src, "ibug68")
    assert m.shape == (68, s.num_points, 2)
    assert np.allclose(m.sum(axis=1), 1.0)
    # single-index rows keep the side (left/right) and the part (eye, brow, mouth, nose, chin)
    for i in range(68):
        nz = np.nonzero(m[i, :, 0])[0]
        if len(nz) == 1:
            a, b = d.names[i], s.names[nz[0]]
            for token in ("left", "right"):
                assert (token in a) == (token in b), (i, a, b)
            for part in ("eye", "brow", "mouth", "lip", "nose", "chin"):
                if part in a:
                    assert part in b, (i, a, b)
    # converting commutes with a horizontal flip (both mappings are left/right symmetric)
    p = np.random.default_rng(1).uniform(0, 200, (3, s.num_points, 2))
    a = schemes.convert(s.flip(p, 200), src, "ibug68")
    b = d.flip(schemes.convert(p, src, "ibug68"), 200)
    assert np.allclose(a, b)


def test_conversion_hand_values():
    k = np.arange(98, dtype=np.float64)
    p = np.stack([k, 1000 + k], -1)
    out = schemes.convert(p, "wflw98", "ibug68")
    assert np.allclose(out[0], [0, 1000]) and np.allclose(out[16], [32, 1032])
    assert np.allclose(out[17], [33, 1033])
    assert np.allclose(out[18], [34, 1000 + (34 + 41) / 2])  # x from the upper edge, y averaged
    assert np.allclose(out[37], [61 + 1 / 3, 1061 + 1 / 3], atol=1e-5)
    assert np.allclose(out[36], [60, 1060]) and np.allclose(out[45], [72, 1072])
    assert np.allclose(out[48:], p[76:96])
    k = np.arange(106, dtype=np.float64)
    p = np.stack([k, 1000 + k], -1)
    out = schemes.convert(p, "jd106", "ibug68")
    assert np.allclose(out[0], [1.5, 1001.5]) and np.allclose(out[8], [16, 1016])
    assert np.allclose(out[36], [66, 1066]) and np.allclose(out[45], [79, 1079])
    assert np.allclose(out[30], [54, 1054]) and np.allclose(out[33], [60, 1060])
    assert np.allclose(out[48:], p[84:104])


def test_conversion_to_five_point_and_identity():
    p = np.random.default_rng(2).uniform(0, 100, (68, 2))
    assert np.allclose(schemes.convert(p, "ibug68", "five_point"), schemes.get("ibug68").five_points(p))
    assert np.allclose(schemes.convert(p, "ibug68", "ibug68"), p)
    with pytest.raises(InvalidArgumentError, match="no conversion from 'ibug68' to 'wflw98'"):
        schemes.convert(p, "ibug68", "wflw98")
    with pytest.raises(SchemeMismatchError, match=r"\(\.\.\., 98, 2\)"):
        schemes.convert(p, "wflw98", "ibug68")


def test_unknown_scheme_names_the_allowed_ones():
    with pytest.raises(UnknownSchemeError) as e:
        schemes.get("ibug_68")
    msg = str(e.value)
    assert "'ibug_68'" in msg and "'ibug68'" in msg and "'wflw98'" in msg
    with pytest.raises(InvalidArgumentError):
        schemes.get(68)


def test_register_custom_scheme_and_validation():
    tri = {
        "name": "test_tri3",
        "names": ["left_eye", "right_eye", "mouth"],
        "flip_permutation": [1, 0, 2],
        "norm": {"inter_ocular": [[0], [1]]},
        "polylines": [{"points": [0, 1, 2], "closed": True}],
    }
    s = schemes.register(tri, overwrite=True)
    assert schemes.get("test_tri3") is s and "test_tri3" in schemes.names()
    assert s.skeleton == ((0, 1), (1, 2), (2, 0))
    with pytest.raises(InvalidArgumentError, match="already registered"):
        schemes.register(tri)
    with pytest.raises(SchemeMismatchError, match="not an involution"):
        schemes.register({**tri, "name": "bad1", "flip_permutation": [1, 2, 0]})
    with pytest.raises(SchemeMismatchError, match="permutation"):
        schemes.register({**tri, "name": "bad2", "flip_permutation": [0, 0, 2]})
    with pytest.raises(SchemeMismatchError, match="duplicate"):
        schemes.register({**tri, "name": "bad3", "names": ["a", "a", "b"]})
    with pytest.raises(SchemeMismatchError, match="unknown keys"):
        schemes.register({**tri, "name": "bad4", "colour": "red"})
    with pytest.raises(InvalidArgumentError, match="packaged"):
        schemes.register({**tri, "name": "ibug68"})


def test_round_trip_to_dict():
    for name in ALL:
        s = schemes.get(name)
        t = schemes.Scheme.from_dict(s.to_dict())
        assert t.to_dict() == s.to_dict()
