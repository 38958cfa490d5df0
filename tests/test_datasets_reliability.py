"""Issue 22, item 7: a bad image inside a dataset folder stops the build naming the file, writes nothing, and the
dataset builds once the file is fixed (before: the build succeeded, reading failed later with a TensorFlow
``Unknown image file format`` naming no file, and the broken copy stayed cached)."""

import shutil
import struct
import zlib

import pytest

from datasets_tfds._common.testing import build, dummy_dir, examples
from lmkzoo.errors import DatasetFormatError


def _huge_png(width=100_000, height=100_000) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _prepared_versions(data_dir):
    return [p for p in data_dir.rglob("dataset_info.json")]


@pytest.mark.parametrize("damage,says", [
    (lambda f: f.write_bytes(b"this is not a jpeg"), "does not decode"),
    (lambda f: f.write_bytes(f.read_bytes()[:40]), "does not decode"),
    (lambda f: f.write_bytes(_huge_png()), "declares too many pixels (Image size (10000000000 pixels) exceeds"),
])
def test_a_bad_image_in_a_landmark_folder_stops_the_build_naming_it(tmp_path, damage, says):
    manual = tmp_path / "manual"
    shutil.copytree(dummy_dir("landmark_folder"), manual)
    bad = manual / "Zico" / "Zico_0001.jpg"
    good = bad.read_bytes()
    damage(bad)
    data_dir = tmp_path / "tfds"
    with pytest.raises(DatasetFormatError) as info:
        build("landmark_folder", data_dir, config="lfw_teacher68", manual_dir=manual)
    assert str(bad) in str(info.value) and says in str(info.value)
    assert not _prepared_versions(data_dir)  # nothing written that a later read would trust
    bad.write_bytes(good)  # fixed: the next build works and reads
    b = build("landmark_folder", data_dir, config="lfw_teacher68", manual_dir=manual)
    assert len(examples(b, "train")) + len(examples(b, "validation")) == 4


def test_a_bad_image_in_a_face_image_folder_stops_the_build_naming_it(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(dummy_dir("face_image_folder"), manual)
    bad = sorted((manual / "img_align_celeba").glob("*.jpg"))[1]
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetFormatError, match=f"{bad}.*does not decode"):
        build("face_image_folder", tmp_path / "tfds", config="celeba", manual_dir=manual)
    assert not _prepared_versions(tmp_path / "tfds")
