"""lmkzoo.visualize (drawing with the scheme) and ``lmkzoo data show`` (a PNG grid of pipeline examples)."""

import subprocess
import sys

import numpy as np
import pytest

from lmkzoo import cli, geometry, schemes
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError
from lmkzoo.visualize import SIDE_COLORS, draw_landmarks, make_grid


def _is(pixel, color, tol=40):
    return np.all(np.abs(pixel.astype(int) - np.array(color)) <= tol)


def test_draw_landmarks_uses_the_pixel_convention_and_side_colours():
    img = np.zeros((40, 60, 3), np.uint8)
    sch = schemes.get("aflw19")
    pts = np.full((19, 2), np.nan)
    pts[sch.index("left_eye_center")] = (10.5, 20.5)  # centre of pixel (row 20, column 10)
    pts[sch.index("right_eye_center")] = (40.5, 20.5)
    pts[sch.index("nose_tip")] = (25.5, 30.5)
    out = draw_landmarks(img, pts, "aflw19", radius=1.0)
    assert _is(out[20, 10], SIDE_COLORS[-1]) and _is(out[20, 40], SIDE_COLORS[1]) and _is(out[30, 25], SIDE_COLORS[0])
    assert out[20, 13].sum() == 0 and out[17, 10].sum() == 0  # a 1-px dot, not a blob
    assert img.sum() == 0  # the input is not modified
    vis = np.ones(19, bool)
    vis[sch.index("left_eye_center")] = False
    hollow = draw_landmarks(img, pts, "aflw19", radius=3.0, visible=vis)
    assert hollow[20, 10].sum() == 0 and _is(hollow[20, 13], SIDE_COLORS[-1], tol=120)  # hollow ring
    with pytest.raises(ShapeMismatchError, match="19 points"):
        draw_landmarks(img, np.zeros((68, 2)), "aflw19")


def test_skeleton_lines_follow_the_scheme():
    img = np.zeros((64, 64, 3), np.uint8)
    sch = schemes.get("ibug68")
    from datasets_tfds._common.synthetic import face_points

    pts = face_points("ibug68", (4, 4, 60, 60))
    with_lines = draw_landmarks(img, pts, sch, radius=0.8)
    without = draw_landmarks(img, pts, sch, radius=0.8, skeleton=False)
    assert (with_lines.sum(-1) > 0).sum() > (without.sum(-1) > 0).sum() + 40
    a, b = pts[0], pts[1]  # first jaw edge: its midpoint is on a line
    mid = ((a + b) / 2).astype(int)
    assert with_lines[mid[1], mid[0]].sum() > 0


def test_make_grid():
    tiles = [np.full((10, 12, 3), v, np.uint8) for v in (10, 20, 30)]
    g = make_grid(tiles, pad=1)
    assert g.shape == (2 * 10 + 3, 2 * 12 + 3, 3)
    assert g[1, 1, 0] == 10 and g[1, 14, 0] == 20 and g[12, 1, 0] == 30 and g[12, 14, 0] == 255


def _asymmetric_face_folder(root):
    """One synthetic face (iBUG-68 .pts) with a big yellow patch over its image-left eye."""
    import cv2

    from datasets_tfds._common.synthetic import draw_face, face_points, save_image, write_pts

    pts = face_points("ibug68", (24, 20, 104, 112))
    img = draw_face((128, 128), pts, "ibug68")
    eye = pts[36:42].mean(0)
    cv2.circle(img, (int(eye[0]), int(eye[1])), 9, (255, 230, 0), -1)
    save_image(root / "face.png", img)
    write_pts(root / "face.pts", pts)
    return pts


def _yellow(tile):
    return (tile[..., 0] > 200) & (tile[..., 1] > 180) & (tile[..., 2] < 90)


def test_data_show_renders_flipped_points_on_the_face(tmp_path, capsys):
    manual = tmp_path / "manual"
    manual.mkdir()
    _asymmetric_face_folder(manual)
    common = ["data", "show", "landmark_folder/pts68", "--split", "train", "-n", "2", "--size", "128", "--crop-scale",
              "1.2", "--data-dir", str(tmp_path / "tfds"), "--manual-dir", str(manual), "--radius", "1.2",
              "--no-skeleton"]
    import cv2

    tiles = {}
    for name, augment in (("plain", "none"), ("flip", '{"flip": {"p": 1.0}}')):
        out = tmp_path / f"{name}.png"
        assert cli.main(common + ["--augment", augment, "--out", str(out)]) == 0
        assert f"wrote {out}" in capsys.readouterr().out
        grid = cv2.imread(str(out))[..., ::-1]
        assert grid.shape == (2 + 128 + 2, 2 * (128 + 2) + 2, 3)
        tiles[name] = grid[2:130, 2:130]
    for name, tile in tiles.items():
        yellow = np.argwhere(_yellow(tile))
        assert len(yellow) > 50
        cy, cx = yellow.mean(0)
        # the drawn eye points that sit on the yellow patch: left-eye (red) points without the flip, right-eye
        # (blue) points after it, because the patch moved to the image-right side and the right-eye points with it
        red = np.argwhere(np.all(np.abs(tile.astype(int) - SIDE_COLORS[-1]) < 40, -1))
        blue = np.argwhere(np.all(np.abs(tile.astype(int) - SIDE_COLORS[1]) < 40, -1))
        near = lambda px: int((np.hypot(px[:, 0] - cy, px[:, 1] - cx) < 8).sum())  # noqa: E731, B023
        if name == "plain":
            assert cx < 64 and near(red) >= 6 and near(blue) == 0
        else:
            assert cx > 64 and near(blue) >= 6 and near(red) == 0
    # flipping mirrors the image content
    assert abs(np.argwhere(_yellow(tiles["flip"]))[:, 1].mean() - (127 - np.argwhere(_yellow(tiles["plain"]))[:, 1].mean())) < 1.5


def test_data_show_user_errors_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lmkzoo.cli", "data", "show", "wflw", "--data-dir", str(tmp_path),
                        "--out", str(tmp_path / "g.png")], capture_output=True, text=True)
    assert r.returncode == 2 and "is not built" in r.stderr and "--manual-dir" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "lmkzoo.cli", "data", "show", "no_such_set", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown dataset 'no_such_set'" in r.stderr


def test_uncertainty_ellipses_faces_and_heatmap_overlay():
    from lmkzoo.inference.landmarker import FaceLandmarks
    from lmkzoo.visualize import draw_faces, draw_uncertainty, heatmap_overlay

    img = np.zeros((60, 80, 3), np.uint8)
    # a 2-sigma ellipse of sigma_x = 10, sigma_y = 2 px around (40.5, 30.5): wide, flat
    out = draw_uncertainty(img, [[40.5, 30.5]], [[[100.0, 0.0], [0.0, 4.0]]], k=2.0)
    assert out[30, 20].sum() > 0 and out[30, 60].sum() > 0  # ends of the 20-px half axis
    assert out[26, 40].sum() > 0 and out[18, 40].sum() == 0  # the 4-px half axis, nothing beyond
    assert out[30, 40].sum() == 0  # an outline, not a filled blob
    with pytest.raises(ShapeMismatchError):
        draw_uncertainty(img, [[1, 1]], np.eye(2))
    sch = schemes.get("ibug68")
    from datasets_tfds._common.synthetic import face_points

    pts = face_points(sch, (20, 10, 60, 50))
    face = FaceLandmarks(points=np.asarray(pts, np.float32), scores=np.ones(68, np.float32),
                         box=np.array([10, 5, 70, 55], np.float32), scheme="ibug68", model="x",
                         covariance=np.tile(np.eye(2, dtype=np.float32) * 4, (68, 1, 1)))
    drawn = draw_faces(img, [face])
    assert drawn[5, 40].sum() > 0  # the box's top edge
    assert drawn.sum() > draw_faces(img, [face], uncertainty=False).sum()  # ellipses add ink
    hm = np.zeros((15, 20, 2), np.float32)
    hm[3, 10, 1] = 1.0
    ov = heatmap_overlay(np.full((60, 80, 3), 100, np.uint8), hm, alpha=0.5)
    y, x = np.unravel_index(np.abs(ov.astype(int) - 100).sum(-1).argmax(), ov.shape[:2])
    assert abs(y - 13.5) <= 3 and abs(x - 42) <= 4  # the hot spot lands where the peak is, resized to the crop
    with pytest.raises(InvalidArgumentError):
        heatmap_overlay(img, hm, alpha=2.0)


def test_landmarker_heatmaps_over_the_crop():
    """``Landmarker.heatmaps``: the crops ``predict`` cuts and each face's maps (PIPNet's score grid here), drawn
    over the crop; the hottest cell of the trained default model's left-eye-corner map lies on that corner."""
    import lmkzoo
    from lmkzoo.image_io import read_image
    from lmkzoo.visualize import heatmap_overlay

    lm = lmkzoo.load()
    img = read_image(lmkzoo.sample_image())
    crops, maps = lm.heatmaps(img)
    crops_p, _ = lm.crops(img)
    assert np.array_equal(crops, crops_p) and maps.shape == (1, 8, 8, 68)
    face = lm.predict(img)[0]
    corner = geometry.apply_affine(face.points[36:37], lm.crops(img)[1][0])[0]  # crop pixels
    j, i = np.unravel_index(np.argmax(maps[0, ..., 36]), maps.shape[1:3])
    assert abs((i + 0.5) * 16 - corner[0]) <= 16 and abs((j + 0.5) * 16 - corner[1]) <= 16
    over = heatmap_overlay(crops[0], maps[0])
    assert over.shape == crops[0].shape and over.dtype == np.uint8
    with pytest.raises(InvalidArgumentError, match="no per-landmark maps"):
        lmkzoo.load("lotr_m", weights=None).heatmaps(img, boxes=[face.box])
