"""jd_landmark builder tests: v1 and v2 layouts, the 0-based pixel-centre convention, rect / bbox boxes."""

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.testing import assert_points_on_marks, build, examples
from datasets_tfds.jd_landmark import jd_landmark_dataset_builder


class JdLandmarkV1Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = jd_landmark_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["v1"]
    SPLITS = {"train": 3, "validation": 1, "test": 1}


class JdLandmarkV2Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = jd_landmark_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["v2"]
    SPLITS = {"train": 4, "validation": 1, "test": 1}


def test_convention_boxes_and_subsets(tmp_path):
    b = build("jd_landmark", tmp_path, config="v1")
    train = {e["image/filename"].decode(): e for e in examples(b, "train")}
    ex = train["Training_data/HELEN/picture/HELEN_100032540_1_0.jpg"]
    # landmark/<name>.jpg.txt line 2 = "14 23" (0-based pixel centre) → (14.5, 23.5); bbox/<name>.jpg.rect
    # "14 14 85 82" = first / last pixel → (14, 14, 86, 83)
    np.testing.assert_array_equal(ex["landmarks"][0], [14.5, 23.5])
    np.testing.assert_array_equal(ex["bbox"], [14, 14, 86, 83])
    assert ex["subset"] == b"HELEN"
    afw = train["Training_data/AFW/picture/AFW_1051618982_1_0.jpg"]  # no rect file: the tight box of the points
    np.testing.assert_allclose(afw["bbox"], [*afw["landmarks"].min(0), *afw["landmarks"].max(0)])
    for split in ("train", "validation", "test"):
        for e in examples(b, split):
            assert e["landmarks"].shape == (106, 2)
            assert_points_on_marks(e["image"], e["landmarks"])
