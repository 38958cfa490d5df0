"""landmark_folder builder tests: .pts folders, teacher CSV with a by-person holdout, dlib XML."""

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.testing import assert_points_on_marks, build, examples
from datasets_tfds.landmark_folder import landmark_folder_dataset_builder


class LandmarkFolderPtsTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = landmark_folder_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["pts68"]
    SPLITS = {"train": 3}


class LandmarkFolderCsvTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = landmark_folder_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["lfw_teacher68"]
    SPLITS = {"train": 3, "validation": 1}


class LandmarkFolderDlibTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = landmark_folder_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["dlib_faces68"]
    SPLITS = {"train": 2, "test": 1}


def test_conventions_of_the_three_formats(tmp_path):
    pts = build("landmark_folder", tmp_path, config="pts68")
    ex = {(e["image/filename"].decode(), int(e["face_index"])): e for e in examples(pts, "train")}
    np.testing.assert_array_equal(ex[("pts/a.jpg", 0)]["landmarks"][0], [9.5, 21.5])  # a.pts "10 22", 1-based
    assert set(ex) == {("pts/a.jpg", 0), ("pts/group/b.png", 0), ("pts/group/b.png", 1)}
    csv = build("landmark_folder", tmp_path, config="lfw_teacher68")
    rows = {e["image/filename"].decode(): e for e in examples(csv, "train") + examples(csv, "validation")}
    np.testing.assert_array_equal(rows["Aaron_Eckhart/Aaron_Eckhart_0001.jpg"]["landmarks"][0], [8.5, 19.5])
    people = lambda split: {e["image/filename"].decode().split("/")[0] for e in examples(csv, split)}  # noqa: E731
    assert not people("train") & people("validation")  # held out by person
    dlib = build("landmark_folder", tmp_path, config="dlib_faces68")
    tr = {e["image/filename"].decode(): e for e in examples(dlib, "train")}
    np.testing.assert_array_equal(tr["dlib/training_920.jpg"]["landmarks"][0], [9.5, 21.5])  # XML x=9 y=21, 0-based
    for b in (pts, csv, dlib):
        for split in b.info.splits:
            for e in examples(b, split):
                assert_points_on_marks(e["image"], e["landmarks"])
