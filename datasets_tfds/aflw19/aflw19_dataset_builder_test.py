"""aflw19 builder tests: the ra split (a dummy-sized num_train), 1-based coordinates, the frontal subset."""

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.testing import assert_points_on_marks, build, examples
from datasets_tfds.aflw19 import aflw19_dataset_builder

DUMMY = aflw19_dataset_builder.Aflw19Config(name="dummy", num_train=3)


class Aflw19Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = aflw19_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = [DUMMY]
    SPLITS = {"train": 3, "test": 2, "test_frontal": 1}
    OVERLAPPING_SPLITS = ["test_frontal"]  # AFLW-Frontal is a subset of AFLW-Full


def test_split_by_ra_convention_and_frontal(tmp_path):
    b = build("aflw19", tmp_path, config=DUMMY)
    train = {e["image/filename"].decode(): e for e in examples(b, "train")}
    # ra = [3 1 5 2 4]: rows 3, 1, 5 train; row 1 = 0/image00002.jpg with data(1, [1 20]) = [24 21] (1-based)
    assert set(train) == {"3/image00006.jpg", "0/image00002.jpg", "0/image00013.jpg"}
    ex = train["0/image00002.jpg"]
    np.testing.assert_array_equal(ex["landmarks"][0], [23.5, 20.5])
    # bbox [xmin xmax ymin ymax] = [24 60 20 70], 1-based inclusive pixels
    np.testing.assert_array_equal(ex["bbox"], [23, 19, 60, 70])
    test = {e["image/filename"].decode(): e for e in examples(b, "test")}
    assert set(test) == {"2/image00004.jpg", "3/image00010.jpg"}
    assert not test["2/image00004.jpg"]["frontal"] and test["2/image00004.jpg"]["occluded"][[0, 12]].all()
    assert [e["image/filename"] for e in examples(b, "test_frontal")] == [b"3/image00010.jpg"]
    for split in ("train", "test"):
        for e in examples(b, split):
            assert_points_on_marks(e["image"], e["landmarks"])
