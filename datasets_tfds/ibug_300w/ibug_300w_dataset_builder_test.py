"""ibug_300w builder tests: both configs from dummy_data, the 1-based .pts convention, subsets, detector boxes."""

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.testing import assert_points_on_marks, build, examples
from datasets_tfds.ibug_300w import ibug_300w_dataset_builder


class Ibug300wSplit1Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ibug_300w_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["split1"]
    SPLITS = {"train": 3, "test_common": 2, "test_challenge": 1}


class Ibug300wSplit2Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ibug_300w_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["split2"]
    SPLITS = {"train": 6, "test_indoor": 1, "test_outdoor": 1}


def test_pts_are_one_based_and_points_sit_on_their_marks(tmp_path):
    b = build("ibug_300w", tmp_path, config="split1")
    train = {e["image/filename"].decode(): e for e in examples(b, "train")}
    ex = train["afw/1051618982_1.jpg"]
    # afw/1051618982_1.pts, point 0 reads "11 20" (1-based): lmkzoo's corner convention gives (10.5, 19.5)
    np.testing.assert_array_equal(ex["landmarks"][0], [10.5, 19.5])
    assert ex["source"] == b"afw" and ex["subset"] == b"train"
    for split in ("train", "test_common", "test_challenge"):
        for e in examples(b, split):
            assert_points_on_marks(e["image"], e["landmarks"])
            lo, hi = e["landmarks"].min(0), e["landmarks"].max(0)
            np.testing.assert_allclose(e["bbox"], [*lo, *hi])
            # the detector box (1-based inclusive pixels [x0-2, y0-3, x1+1, y1+2] around the points) → corners
            assert np.all(e["detector_bbox"][:2] < lo) and np.all(e["detector_bbox"][2:] > hi)
    assert {e["subset"] for e in examples(b, "test_challenge")} == {b"challenge"}
    assert {e["source"] for e in examples(b, "test_common")} == {b"helen", b"lfpw"}


def test_split2_has_no_detector_boxes_for_the_300w_test_set(tmp_path):
    b = build("ibug_300w", tmp_path, config="split2")
    (indoor,) = examples(b, "test_indoor")
    assert indoor["subset"] == b"indoor" and np.all(np.isnan(indoor["detector_bbox"]))
    assert_points_on_marks(indoor["image"], indoor["landmarks"])
