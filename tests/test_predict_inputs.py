"""Issue 22, items 6, 8, 11 and 12: what ``predict`` accepts, and clear errors for what it cannot use.

Images of every kind go through one function (:func:`lmkzoo.image_io.to_rgb`); boxes and five points through one
check each, whose messages name the argument, what was received and what is accepted."""

import io
import struct
import zlib

import numpy as np
import pytest

import lmkzoo
from lmkzoo import cli, geometry, schemes
from lmkzoo.errors import InvalidArgumentError, InvalidImageError, ShapeMismatchError
from lmkzoo.image_io import read_image
from lmkzoo.testing.lfw import load_faces, teacher_rows

SAMPLE = "lmkzoo/assets/samples/astronaut.jpg"


@pytest.fixture(scope="module")
def lm():
    return lmkzoo.load()


@pytest.fixture(scope="module")
def face(shared_data):
    images, pts = load_faces(shared_data, teacher_rows(shared_data)[:1])
    return images[0], pts[0]


def _huge_png(width=100_000, height=100_000) -> bytes:
    """A valid PNG header declaring width x height pixels (10^10: beyond what OpenCV will allocate)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------- images (12)
def test_pil_images_and_encoded_bytes_simply_work(lm):
    from PIL import Image

    img = read_image(SAMPLE)
    ref = lm.predict(img, detector=None)[0].points
    pil = Image.open(SAMPLE)
    data = open(SAMPLE, "rb").read()
    for given in (pil, data, bytearray(data), [pil]):
        got = lm.predict(given, detector=None)
        got = got[0] if isinstance(given, list) else got
        np.testing.assert_allclose(got[0].points, ref, atol=1e-3)
    rgba = Image.fromarray(img).convert("RGBA")
    np.testing.assert_allclose(lm.predict(rgba, detector=None)[0].points, ref, atol=1e-3)


@pytest.mark.parametrize("given,says", [
    (None, "images must be a path, a uint8 (H, W, 3) RGB array, a PIL image or the bytes of an image file, or a list "
           "of them; got NoneType"),
    (7, "got int 7"),
    ([None], "image 0 must be a path, a uint8"),
    (b"not an image", "cannot decode image (corrupt file or unsupported format; 12 bytes)"),
    (np.zeros((8, 8, 3), np.float32), "must be uint8 RGB"),
])
def test_what_predict_cannot_use_is_named(lm, given, says):
    with pytest.raises(InvalidImageError) as info:
        lm.predict(given)
    assert says in str(info.value)


def test_an_enormous_declared_size_is_an_unreadable_image_not_an_opencv_error(tmp_path, capsys):
    """Item 8: OpenCV refuses to allocate; lmkzoo reports the file as unreadable, and a folder run goes on."""
    huge = tmp_path / "photos" / "huge.png"
    huge.parent.mkdir()
    huge.write_bytes(_huge_png())
    with pytest.raises(InvalidImageError, match=r"cannot decode image .*huge\.png \(\d+ bytes\)"):
        read_image(huge)
    (tmp_path / "photos" / "good.jpg").write_bytes(open(SAMPLE, "rb").read())
    assert cli.main(["predict", str(huge.parent), "--json"]) == 2  # both files tried; exit 2 for the bad one
    captured = capsys.readouterr()
    assert "1 of 2 image(s) could not be read" in captured.err and '"faces"' in captured.out


# ------------------------------------------------------------------------------------------ boxes (11, 12)
@pytest.mark.parametrize("boxes,error,says", [
    (np.arange(8.0), ShapeMismatchError, "boxes must be shaped (N, 4) or (4,) (x0, y0, x1, y1) per face; got shape (8,)"),
    ([[0, 0, 10]], ShapeMismatchError, "got shape (1, 3)"),
    ([[10, 10, 5, 50]], InvalidArgumentError, "boxes[0] = [10.0, 10.0, 5.0, 50.0] cannot be a face box: x1 <= x0"),
    ([[np.nan, 0, 10, 10]], InvalidArgumentError, "boxes must be finite"),
    ([[-1e12, -1e12, 1e12, 1e12]], InvalidArgumentError, "boxes[0] = [-1000000000000.0, -1000000000000.0, "
                                                         "1000000000000.0, 1000000000000.0] cannot be a face box: it is over"),
    ([[1000, 1000, 1100, 1100]], InvalidArgumentError, "it does not overlap the 512x512 image"),
    ("face", ShapeMismatchError, "boxes must be numbers shaped"),
])
def test_boxes_that_cannot_be_faces_are_refused_naming_the_box(lm, boxes, error, says):
    img = read_image(SAMPLE)
    with pytest.raises(error) as info:
        lm.predict(img, boxes=boxes)
    assert says in str(info.value)


def test_one_box_and_several_boxes_are_read_as_such(lm):
    img = read_image(SAMPLE)
    box = [150.0, 60.0, 300.0, 240.0]
    assert len(lm.predict(img, boxes=box)) == 1 and len(lm.predict(img, boxes=[box, box])) == 2
    assert lm.predict(img, boxes=[]) == []
    with pytest.raises(InvalidArgumentError, match=r"boxes of image 1\[0\]"):
        lm.predict([img, img], boxes=[[box], [[0, 0, -5, 5]]])


# ------------------------------------------------------------------------------------------- five points (6)
def test_five_points_given_to_a_box_model_crop_the_face_they_stand_for(lm, face):
    """Before the fix the box of the five points themselves (eyes to mouth) was the face box: 36 % of the
    inter-ocular distance off. Now the landmarks agree with those from the face's own box within a few %."""
    img, pts = face
    sch = schemes.get("ibug68")
    iod = np.linalg.norm(pts[36:42].mean(0) - pts[42:48].mean(0))
    from_box = lm.predict(img, boxes=[geometry.points_bbox(pts)])[0].points
    from_five = lm.predict(img, five_points=[sch.five_points(pts)])[0]
    err = np.linalg.norm(from_five.points - from_box, axis=1).mean() / iod
    assert err < 0.05, err
    assert from_five.box[2] - from_five.box[0] > 1.5 * np.ptp(sch.five_points(pts)[:, 0])  # a face box, not the points'


def test_five_points_and_boxes_together_are_refused(lm, face):
    img, pts = face
    with pytest.raises(InvalidArgumentError, match="pass boxes= or five_points= for a face, not both"):
        lm.predict(img, boxes=[geometry.points_bbox(pts)], five_points=[schemes.get("ibug68").five_points(pts)])
    with pytest.raises(ShapeMismatchError, match=r"five_points must be shaped \(N, 5, 2\) or \(5, 2\).*got shape \(1, 4, 2\)"):
        lm.predict(img, five_points=[pts[:4]])


# --------------------------------------------------------------------------------------------- video (12)
@pytest.mark.parametrize("kw,says", [({"fps": -5}, "fps must be a positive frame rate"), ({"fps": float("nan")}, "fps"),
                                     ({"beta": -1}, "beta must be a non-negative"), ({"min_cutoff": 0}, "min_cutoff")])
def test_predict_video_names_its_bad_arguments(lm, kw, says):
    frames = [read_image(SAMPLE)] * 2
    with pytest.raises(InvalidArgumentError, match=says):
        lm.predict_video(frames, **kw)
    assert "dt" not in says


def test_unknown_model_says_did_you_mean():
    with pytest.raises(KeyError) as info:
        lmkzoo.load("pipnet_lte")
    assert str(info.value).startswith("unknown model 'pipnet_lte' (did you mean 'pipnet_lite'")


def test_a_truncated_keras_file_is_not_reported_as_missing(tmp_path):
    path = tmp_path / "model.keras"
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("config.json", "{}" * 1000)
    path.write_bytes(buf.getvalue()[:50])
    with pytest.raises(InvalidArgumentError) as info:
        lmkzoo.load(path)
    assert "not a zip archive" in str(info.value) and "not found" not in str(info.value).lower()


# ---------------------------------------------------------------------------------------- int8 calibration (9)
def test_int8_calibration_refuses_faceless_images_and_reports_its_crops(lm):
    from lmkzoo.export.calibration import representative_crops

    blank = np.full((240, 320, 3), 90, np.uint8)
    with pytest.raises(InvalidArgumentError, match=r"found no face in the representative images \(2 image\(s\)\)"):
        representative_crops(lm, [blank, blank])
    with pytest.warns(UserWarning, match="no face in 1 of 2 images"):
        crops, summary = representative_crops(lm, [read_image(SAMPLE), blank])
    assert len(crops) == 2
    assert summary == {"crops": 2, "source": "the representative images", "images": 2, "faces": 1, "whole_images": 1}
