"""cofw builder tests: MAT v7.3 (HDF5) and older MAT dummy files, 1-based coordinates, occlusion flags, COFW-68."""

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.matfile import load_mat, mat_version
from datasets_tfds._common.testing import assert_points_on_marks, build, dummy_dir, examples
from datasets_tfds.cofw import cofw_dataset_builder


class Cofw29Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = cofw_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["cofw29"]
    SPLITS = {"train": 2, "test": 2}


class Cofw68Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = cofw_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["cofw68"]
    SPLITS = {"test": 2}


class Cofw29MatV5Test(tfds.testing.DatasetBuilderTestCase):
    """The same builder on older (scipy-readable) MAT files named as the grey-level release."""

    DATASET_CLASS = cofw_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["cofw29"]
    EXAMPLE_DIR = str(dummy_dir("cofw", "dummy_data_mat_v5"))
    SPLITS = {"train": 2, "test": 1}


def test_dummy_files_cover_both_mat_versions():
    assert mat_version(dummy_dir("cofw") / "COFW_train_color.mat") == "7.3"
    assert mat_version(dummy_dir("cofw", "dummy_data_mat_v5") / "COFW_train.mat") == "5"
    v73 = load_mat(dummy_dir("cofw") / "COFW_train_color.mat")
    assert v73["IsTr"].shape == (2, 1) and v73["IsTr"][0, 0].shape == (78, 80)  # grey H x W
    assert v73["IsTr"][1, 0].shape == (78, 86, 3) and v73["phisTr"].shape == (2, 87)


def test_cofw29_convention_flags_and_grey_images(tmp_path):
    b = build("cofw", tmp_path, config="cofw29")
    train = {e["image/filename"].decode(): e for e in examples(b, "train")}
    ex = train["COFW_train_color.mat/0001"]
    # phisTr row 1 starts x=14 (column 1), y=17 (column 30): MATLAB 1-based → (13.5, 16.5); box x=14 y=14 w=55 h=54
    np.testing.assert_array_equal(ex["landmarks"][0], [13.5, 16.5])
    np.testing.assert_array_equal(ex["bbox"], [13, 13, 68, 67])
    assert ex["image"].shape == (78, 80, 3)  # the grey image became 3 channels
    np.testing.assert_array_equal(ex["occluded"], [(j % 3) == 0 for j in range(29)])
    assert ex["visible"].all()
    for split in ("train", "test"):
        for e in examples(b, split):
            assert_points_on_marks(e["image"], e["landmarks"])


def test_cofw68_points_and_boxes(tmp_path):
    b = build("cofw", tmp_path, config="cofw68")
    test = {e["image/filename"].decode(): e for e in examples(b, "test")}
    ex = test["COFW_test_color.mat/0001"]
    # 1_points.mat Points(1, :) = [89 23] → (88.5, 22.5); cofw68_test_bboxes row 1 = [88 10 64 62] (x, y, w, h)
    np.testing.assert_array_equal(ex["landmarks"][0], [88.5, 22.5])
    np.testing.assert_array_equal(ex["bbox"], [87, 9, 151, 71])
    np.testing.assert_array_equal(ex["occluded"], [(j % 5) == 0 for j in range(68)])
    for e in test.values():
        assert_points_on_marks(e["image"], e["landmarks"])
