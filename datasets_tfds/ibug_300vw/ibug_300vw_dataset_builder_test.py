"""ibug_300vw builder tests: frames decoded from vid.avi, every Nth frame, categories, frame/annotation pairing."""

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.testing import assert_points_on_marks, build, examples
from datasets_tfds.ibug_300vw import ibug_300vw_dataset_builder


class Ibug300vwStep5Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ibug_300vw_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["step5"]
    SPLITS = {"train": 2, "test_category1": 2, "test_category2": 2, "test_category3": 2}


def test_every_frame_pairs_with_its_annotation(tmp_path):
    b = build("ibug_300vw", tmp_path, config="step1")
    assert {s: v.num_examples for s, v in b.info.splits.items()} == {
        "train": 6, "test_category1": 6, "test_category2": 6, "test_category3": 6}
    cat1 = sorted(examples(b, "test_category1"), key=lambda e: int(e["frame_index"]))
    assert [int(e["frame_index"]) for e in cat1] == [1, 2, 3, 4, 5, 6]
    assert {e["video_id"] for e in cat1} == {b"114"} and {int(e["category"]) for e in cat1} == {1}
    # 114/annot/000006.pts point 0 = "23 27" (1-based) → (22.5, 26.5); the face moves 2 px per frame, so a frame
    # paired with the wrong annotation would miss its marks
    np.testing.assert_array_equal(cat1[-1]["landmarks"][0], [22.5, 26.5])
    for split in b.info.splits:
        for e in examples(b, split):
            assert_points_on_marks(e["image"], e["landmarks"])
    assert {int(e["category"]) for e in examples(b, "train")} == {0}
    assert {e["video_id"] for e in examples(b, "test_category3")} == {b"410"}
