"""wflw builder tests: dummy lists, the 0-based pixel-centre convention, attributes, several faces per image."""

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.testing import assert_points_on_marks, build, examples
from datasets_tfds.wflw import wflw_dataset_builder


class WflwTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = wflw_dataset_builder.Builder
    SPLITS = {"train": 3, "test": 1}


def test_coordinates_attributes_and_faces_per_image(tmp_path):
    b = build("wflw", tmp_path)
    train = {(e["image/filename"].decode(), int(e["face_index"])): e for e in examples(b, "train")}
    first = train[("51--Dancing/51_Dancing_Dancing_51_1.jpg", 0)]
    # line 1 starts "13 37" (0-based pixel centres) → (13.5, 37.5); rectangle 11 30 81 78 = first/last pixel
    np.testing.assert_array_equal(first["landmarks"][0], [13.5, 37.5])
    np.testing.assert_array_equal(first["bbox"], [11, 30, 82, 79])
    assert {k: bool(v) for k, v in first["attributes"].items()} == {
        "pose": True, "expression": False, "illumination": True, "makeup": False, "occlusion": True, "blur": False}
    second = train[("51--Dancing/51_Dancing_Dancing_51_1.jpg", 1)]
    assert second["landmarks"][:, 0].min() > 96  # the second face of the same image
    assert bool(second["attributes"]["expression"]) and not bool(second["attributes"]["pose"])
    for split in ("train", "test"):
        for e in examples(b, split):
            assert_points_on_marks(e["image"], e["landmarks"])
