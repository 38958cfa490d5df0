"""300-W from the shared human-annotated copy (a partial download: no iBUG set, 870 of HELEN's 2,000 training faces)
and from partial dummy copies: the splits the files support, a clear statement of what is missing, the ``.pts``
convention, and ``evaluate``'s Common / HELEN / LFPW rows."""

import shutil

import numpy as np
import pytest

from datasets_tfds._common.parsers import read_pts
from datasets_tfds._common.testing import build, dummy_dir, examples
from datasets_tfds.ibug_300w.ibug_300w_dataset_builder import PartialDatasetWarning
from lmkzoo.errors import DatasetFormatError


def test_shared_copy_builds_train_and_common_and_says_what_is_missing(ibug_300w_tfds, shared_data):
    b = ibug_300w_tfds
    assert {k: v.num_examples for k, v in b.info.splits.items()} == {"train": 2012, "test_common": 554}
    assert b.info.metadata["missing"] == ["ibug"]
    assert b.info.metadata["faces"]["helen/trainset"] == [870, 2000]
    assert b.info.metadata["faces"]["lfpw/testset"] == [224, 224]
    (msg,) = b.partial_warnings
    assert "'test_challenge' left out (no .pts files in ibug)" in msg and "helen/trainset: 870 of 2000" in msg

    common = examples(b, "test_common")
    sources = [e["source"].decode() for e in common]
    assert sources.count("helen") == 330 and sources.count("lfpw") == 224
    assert {e["subset"] for e in common} == {b"common"}
    train = examples(b, "train")
    assert {e["source"].decode() for e in train} == {"afw", "helen", "lfpw"}
    for e in train + common:
        h, w = e["image"].shape[:2]
        assert np.all(e["landmarks"] > 0) and np.all(e["landmarks"] < [w, h])
        np.testing.assert_allclose(e["bbox"], [*e["landmarks"].min(0), *e["landmarks"].max(0)])
    # the .pts files are 1-based: a point is pts - 0.5 in lmkzoo's corner convention
    ex = next(e for e in common if e["image/filename"].decode().startswith("lfpw/testset/"))
    pts_file = shared_data / "ibug_300w" / (ex["image/filename"].decode().rsplit(".", 1)[0] + ".pts")
    first = np.array(pts_file.read_text().split("{")[1].split()[:2], float)
    np.testing.assert_allclose(ex["landmarks"][0], first - 0.5, atol=1e-4)
    np.testing.assert_allclose(ex["landmarks"], read_pts(pts_file, 68, raw=True) - 0.5, atol=1e-4)


def test_partial_dummy_copy_builds_what_it_can(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(dummy_dir("ibug_300w"), manual)
    shutil.rmtree(manual / "ibug")
    shutil.rmtree(manual / "afw")
    with pytest.warns(PartialDatasetWarning, match=r"'train' built without afw.*'test_challenge' left out"):
        b = build("ibug_300w", tmp_path / "tfds", config="split1", manual_dir=manual)
    assert set(b.info.splits) == {"train", "test_common"}
    assert {e["source"] for e in examples(b, "train")} == {b"helen", b"lfpw"}
    assert b.info.metadata["missing"] == ["afw", "ibug"]


def test_copy_without_any_300w_folder_is_refused_and_writes_nothing(tmp_path):
    (tmp_path / "manual" / "unrelated").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match="none of the 300-W folders of config 'split1'.*afw.*ibug"):
        build("ibug_300w", tmp_path / "tfds", config="split1", manual_dir=tmp_path / "manual")
    assert not list((tmp_path / "tfds").rglob("*.tfrecord*"))


def test_evaluate_reports_common_and_its_helen_and_lfpw_parts(ibug_300w_tfds):
    import lmkzoo
    from lmkzoo.inference.evaluate import evaluate

    lm = lmkzoo.load()
    report = evaluate(lm, "ibug_300w:test_common", data_dir=ibug_300w_tfds.root_data_dir)
    assert report.num_faces == 554 and report.boxes == "annotation"
    assert report.subsets["common/helen"]["num_faces"] == 330 and report.subsets["common/lfpw"]["num_faces"] == 224
    parts = report.subsets["common/helen"]["nme"] * 330 + report.subsets["common/lfpw"]["nme"] * 224
    assert np.isclose(parts / 554, report.nme)
    assert "common/helen" in report.markdown()
