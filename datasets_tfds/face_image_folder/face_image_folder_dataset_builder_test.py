"""face_image_folder builder tests: unlabelled images, whole-image boxes, boxes.csv, the CelebA partition."""

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.testing import build, examples
from datasets_tfds.face_image_folder import face_image_folder_dataset_builder


class FaceImageFolderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = face_image_folder_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["folder"]
    SPLITS = {"train": 5}


class FaceImageFolderCelebaTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = face_image_folder_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["celeba"]
    SPLITS = {"train": 1, "validation": 1, "test": 1}


def test_boxes_default_to_the_whole_image(tmp_path):
    b = build("face_image_folder", tmp_path, config="folder")
    ex = {e["image/filename"].decode(): e for e in examples(b, "train")}
    assert set(ex) == {"lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "lfw/Abba_Eban/Abba_Eban_0001.jpg",
                       "img_align_celeba/000001.jpg", "img_align_celeba/000002.jpg", "img_align_celeba/000003.jpg"}
    np.testing.assert_array_equal(ex["img_align_celeba/000001.jpg"]["bbox"], [0, 0, 56, 68])
    assert ex["img_align_celeba/000001.jpg"]["image"].shape == (68, 56, 3)
    np.testing.assert_array_equal(ex["lfw/Abba_Eban/Abba_Eban_0001.jpg"]["bbox"], [8, 10, 56, 60])  # boxes.csv
    celeba = build("face_image_folder", tmp_path, config="celeba")
    assert [e["image/filename"] for e in examples(celeba, "validation")] == [b"img_align_celeba/000002.jpg"]
