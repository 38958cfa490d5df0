"""menpo2d builder tests: semi-frontal (68) and profile (39) faces told apart by their point count."""

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.testing import assert_points_on_marks, build, examples
from datasets_tfds.menpo2d import menpo2d_dataset_builder


class Menpo2dSemifrontalTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = menpo2d_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["semifrontal"]
    SPLITS = {"train": 2, "test": 1}


class Menpo2dProfileTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = menpo2d_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["profile"]
    SPLITS = {"train": 1, "test": 1}


def test_profile_convention_and_counts(tmp_path):
    b = build("menpo2d", tmp_path, config="profile")
    (ex,) = examples(b, "train")
    assert ex["image/filename"] == b"trainset/aflw__face_40004.jpg" and ex["landmarks"].shape == (39, 2)
    np.testing.assert_array_equal(ex["landmarks"][0], [30.5, 13.5])  # .pts "31 14", 1-based
    assert_points_on_marks(ex["image"], ex["landmarks"])
    assert b.info.metadata["scheme"] == "menpo39"
    semi = build("menpo2d", tmp_path, config="semifrontal")
    for e in examples(semi, "train") + examples(semi, "test"):
        assert e["landmarks"].shape == (68, 2)
        assert_points_on_marks(e["image"], e["landmarks"])
