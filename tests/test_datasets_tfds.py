"""The TFDS builders as a whole: registration, bad input (typed error naming file and line, nothing written),
and the .mat reader. Each builder's own tests (dummy data, conventions) live beside it in
``datasets_tfds/<name>/<name>_dataset_builder_test.py`` and are collected through pyproject's ``testpaths``."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from datasets_tfds._common.matfile import load_mat
from datasets_tfds._common.parsers import read_count_points_txt, read_pts
from datasets_tfds._common.testing import build, dummy_dir, examples
from lmkzoo.errors import DatasetFormatError

NAMES = ("ibug_300w", "wflw", "cofw", "aflw19", "jd_landmark", "menpo2d", "ibug_300vw", "landmark_folder",
         "face_image_folder")


def test_import_registers_all_builders():
    import tensorflow_datasets as tfds

    import datasets_tfds

    assert set(datasets_tfds.BUILDERS) == set(NAMES)
    assert set(NAMES) <= set(tfds.list_builders(with_community_datasets=False))
    for name in NAMES:
        b = tfds.builder_cls(name)
        assert b.MANUAL_DOWNLOAD_INSTRUCTIONS.strip(), name
        folder = Path(datasets_tfds.__file__).parent / name
        for f in ("README.md", "CITATIONS.bib", "TAGS.txt", f"{name}_dataset_builder_test.py", "dummy_data"):
            assert (folder / f).exists(), f"{name}: {f} missing"


def _copy(name, tmp_path) -> Path:
    dst = tmp_path / "manual"
    shutil.copytree(dummy_dir(name), dst)
    return dst


def _data_files(path: Path) -> list:
    """Files, version folders and temporary folders a build left under ``path`` (empty folders aside), except
    TFDS's own ``<name>/.config/metadata.json`` (builder-config bookkeeping written before generating)."""
    if not Path(path).exists():
        return []
    return [p for p in Path(path).rglob("*")
            if ".config" not in p.parts and (p.is_file() or "incomplete" in p.name or p.name == "1.0.0")]


def _assert_fails_cleanly(name, config, manual, tmp_path, *must_mention):
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetFormatError) as e:
        build(name, data_dir, config=config, manual_dir=manual)
    msg = str(e.value)
    for m in must_mention:
        assert m in msg, f"{m!r} not in {msg!r}"
    assert _data_files(data_dir) == [], "a failed build left files in the data dir"
    return msg


def test_wrong_point_count_in_pts(tmp_path):
    manual = _copy("ibug_300w", tmp_path)
    f = manual / "helen" / "testset" / "2968560214_1.pts"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[:3] + lines[4:]) + "\n")  # 67 point lines for n_points 68
    msg = _assert_fails_cleanly("ibug_300w", "split1", manual, tmp_path, "2968560214_1.pts", "line 71")
    assert "68" in msg and "67" in msg


def test_non_numeric_value_in_wflw_list_names_file_and_line(tmp_path):
    manual = _copy("wflw", tmp_path)
    f = manual / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_train.txt"
    lines = f.read_text().splitlines()
    cols = lines[1].split()
    cols[5] = "12.x"
    lines[1] = " ".join(cols)
    f.write_text("\n".join(lines) + "\n")
    _assert_fails_cleanly("wflw", None, manual, tmp_path, "list_98pt_rect_attr_train.txt", "line 2", "'12.x'")


def test_missing_image_names_the_annotation(tmp_path):
    manual = _copy("wflw", tmp_path)
    (manual / "WFLW_images" / "0--Parade" / "0_Parade_marchingband_1_5.jpg").unlink()
    _assert_fails_cleanly("wflw", None, manual, tmp_path, "list_98pt_rect_attr_train.txt", "line 3",
                          "0_Parade_marchingband_1_5.jpg")
    manual2 = tmp_path / "jd"
    shutil.copytree(dummy_dir("jd_landmark"), manual2)
    (manual2 / "JD-landmark" / "Validation_data" / "picture" / "000001.jpg").unlink()
    _assert_fails_cleanly("jd_landmark", "v1", manual2, tmp_path / "b", "000001.jpg.txt", "is missing")


def test_unreadable_mat_file(tmp_path):
    manual = _copy("cofw", tmp_path)
    f = manual / "COFW_test_color.mat"
    f.write_bytes(f.read_bytes()[:1500])  # truncated HDF5
    _assert_fails_cleanly("cofw", "cofw29", manual, tmp_path, "COFW_test_color.mat", "unreadable MAT v7.3")
    g = tmp_path / "junk.mat"
    g.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 40)
    with pytest.raises(DatasetFormatError, match="junk.mat.*unreadable MAT v5"):
        load_mat(g)
    with pytest.raises(DatasetFormatError, match="variables \\['nope'\\] missing"):
        load_mat(dummy_dir("cofw") / "cofw68_test_bboxes.mat", ["nope"])


def test_bad_matrix_shape_in_mat(tmp_path):
    import scipy.io

    manual = tmp_path / "aflw"
    shutil.copytree(dummy_dir("aflw19"), manual)
    m = scipy.io.loadmat(str(manual / "AFLWinfo_release.mat"))
    m["data"] = m["data"][:, :37]
    scipy.io.savemat(str(manual / "AFLWinfo_release.mat"), {k: v for k, v in m.items() if not k.startswith("__")})
    from datasets_tfds.aflw19.aflw19_dataset_builder import Aflw19Config

    _assert_fails_cleanly("aflw19", Aflw19Config(name="dummy", num_train=3), manual, tmp_path,
                          "AFLWinfo_release.mat", "data must be 5 x 38")


def test_truncated_video_fails_during_generation_without_leftovers(tmp_path):
    from datasets_tfds.ibug_300vw.ibug_300vw_dataset_builder import Vw300Config

    manual = _copy("ibug_300vw", tmp_path)
    extra = manual / "300VW_Dataset_2015_12_14" / "203" / "annot" / "000007.pts"
    shutil.copy(extra.with_name("000006.pts"), extra)  # annotated frame 7 of a 6-frame video
    strict = Vw300Config(name="step1_strict", frame_step=1, skip_undecodable_frames=False)
    _assert_fails_cleanly("ibug_300vw", strict, manual, tmp_path, "vid.avi", "frame 7")
    extra.unlink()  # after fixing the data the same data dir builds
    b = build("ibug_300vw", tmp_path / "data", config="step1", manual_dir=manual)
    assert b.info.splits["test_category2"].num_examples == 6


def test_undecodable_300vw_frames_are_skipped_with_a_warning_by_default(tmp_path, caplog):
    """The same truncated video with the default configs: frame 7 of video 203 cannot be decoded, so it is
    skipped and listed in a warning, and everything else builds (docs/reference_facts.md §F: 300VW's broken frames)."""
    manual = _copy("ibug_300vw", tmp_path)
    annot = manual / "300VW_Dataset_2015_12_14" / "203" / "annot"
    for n in (7, 8):  # annotated frames 7 and 8 of a 6-frame video
        shutil.copy(annot / "000006.pts", annot / f"{n:06d}.pts")
    with caplog.at_level("WARNING", logger="datasets_tfds.ibug_300vw"):
        b = build("ibug_300vw", tmp_path / "data", config="step1", manual_dir=manual)
    assert {s: v.num_examples for s, v in b.info.splits.items()} == {
        "train": 6, "test_category1": 6, "test_category2": 6, "test_category3": 6}
    cat2 = examples(b, "test_category2")
    assert sorted(int(e["frame_index"]) for e in cat2) == [1, 2, 3, 4, 5, 6] and {e["video_id"] for e in cat2} == {b"203"}
    warnings = [r.getMessage() for r in caplog.records if r.name == "datasets_tfds.ibug_300vw"]
    assert len(warnings) == 1 and "video 203" in warnings[0] and "vid.avi" in warnings[0]
    assert "skipped 2 annotated frame(s)" in warnings[0] and warnings[0].endswith("[7, 8]")


def test_landmark_folder_missing_boxes_csv_and_bad_holdout(tmp_path):
    from datasets_tfds.landmark_folder.landmark_folder_dataset_builder import LandmarkFolderConfig
    from lmkzoo.errors import InvalidArgumentError

    manual = _copy("landmark_folder", tmp_path)
    cfg = LandmarkFolderConfig(name="pts_boxes", splits={"train": "pts/**/*.pts"}, boxes_csv="faces.csv")
    msg = _assert_fails_cleanly("landmark_folder", cfg, manual, tmp_path, str(manual / "faces.csv"), "'faces.csv'")
    assert "cannot be read (No such file or directory)" in msg
    (manual / "boxes_dir").mkdir()  # a folder is an OSError too
    cfg = LandmarkFolderConfig(name="pts_boxes_dir", splits={"train": "pts/**/*.pts"}, boxes_csv="boxes_dir")
    _assert_fails_cleanly("landmark_folder", cfg, manual, tmp_path / "b", str(manual / "boxes_dir"), "cannot be read")
    bad_holdouts = {
        "from_missing": ({"name": "validation", "from": "training", "fraction": 0.1},
                         r"holdout\['from'\] must be one of the config's splits \['train'\]; got 'training'"),
        "name_taken": ({"name": "train", "from": "train", "fraction": 0.1},
                       r"holdout\['name'\] must be a new split, not one of \['train'\]; got 'train'"),
        "fraction": ({"name": "validation", "from": "train", "fraction": "most"},
                     r"holdout\['fraction'\] must be a number in \(0, 1\); got 'most'"),
        "keys": ({"name": "validation", "fraction": 0.1}, r"holdout must be a dict with keys 'name', 'from', 'fraction'"),
    }
    for i, (name, (holdout, match)) in enumerate(bad_holdouts.items()):
        cfg = LandmarkFolderConfig(name=f"holdout_{name}", format="csv", splits={"train": "teacher68.csv"}, holdout=holdout)
        data_dir = tmp_path / f"h{i}"
        with pytest.raises(InvalidArgumentError, match=match):
            build("landmark_folder", data_dir, config=cfg, manual_dir=manual)
        assert _data_files(data_dir) == []


def test_parsers_report_file_and_line(tmp_path):
    f = tmp_path / "x.pts"
    f.write_text("version: 1\nn_points: 2\n{\n1 2\n3 nan\n}\n")
    with pytest.raises(DatasetFormatError, match=r"x.pts, line 5: non-finite"):
        read_pts(f, 2)
    f.write_text("version: 1\nn_points: 2\n{\n1 2\n3 y\n}\n")
    with pytest.raises(DatasetFormatError, match=r"x.pts, line 5: non-numeric point '3 y'"):
        read_pts(f, 2)
    with pytest.raises(DatasetFormatError, match=r"line 2: expected one of \[39, 68\] points"):
        read_pts(f, allowed_counts=(68, 39))
    t = tmp_path / "a.jpg.txt"
    t.write_text("106\n" + "1 2\n" * 105)
    with pytest.raises(DatasetFormatError, match=r"a.jpg.txt, line 106: the file declares 106 points but 105"):
        read_count_points_txt(t, 106)
    t.write_text("98\n" + "1 2\n" * 98)
    with pytest.raises(DatasetFormatError, match=r"line 1: expected 106 points, the file declares 98"):
        read_count_points_txt(t, 106)
    with pytest.raises(DatasetFormatError, match="missing.pts.*cannot read"):
        read_pts(tmp_path / "missing.pts")


def test_mat_v73_and_v5_give_identical_arrays(tmp_path):
    """The HDF5 reader undoes MATLAB's column-major layout exactly like scipy does for the same data."""
    import scipy.io

    import tools.make_dummy_data as mk

    rng = np.random.default_rng(0)
    cell = np.empty((2, 1), object)
    cell[0, 0] = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    cell[1, 0] = rng.integers(0, 255, (4, 6), dtype=np.uint8)
    phis = rng.normal(size=(2, 87))
    mk._write_mat73(tmp_path / "a73.mat", {"IsTr": cell, "phisTr": phis})
    scipy.io.savemat(str(tmp_path / "a5.mat"), {"IsTr": cell, "phisTr": phis})
    a, b = load_mat(tmp_path / "a73.mat"), load_mat(tmp_path / "a5.mat")
    np.testing.assert_array_equal(a["phisTr"], b["phisTr"])
    assert a["IsTr"].shape == b["IsTr"].shape == (2, 1)
    for i in range(2):
        np.testing.assert_array_equal(a["IsTr"][i, 0], b["IsTr"][i, 0])


def test_examples_have_deterministic_keys_and_order(tmp_path):
    b1 = build("wflw", tmp_path / "one")
    b2 = build("wflw", tmp_path / "two")
    k1 = [(e["image/filename"], int(e["face_index"])) for e in examples(b1, "train")]
    k2 = [(e["image/filename"], int(e["face_index"])) for e in examples(b2, "train")]
    assert k1 == k2 and len(set(k1)) == len(k1)
