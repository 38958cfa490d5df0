"""``wflw``: Wider Facial Landmarks in-the-Wild (98 points, six attribute flags), from the original lists."""

from __future__ import annotations

from pathlib import Path

import tensorflow_datasets as tfds

from datasets_tfds._common.base import Face, LandmarkBuilder
from datasets_tfds._common.features import flag_features
from datasets_tfds._common.parsers import WFLW_ATTRIBUTES, pixel_index_box, read_wflw_list

LISTS = "WFLW_annotations/list_98pt_rect_attr_train_test"
IMAGES = "WFLW_images"


class Builder(LandmarkBuilder):
    """WFLW: one example per line of ``list_98pt_rect_attr_{train,test}.txt`` (one face each)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    SCHEME = "wflw98"
    HOMEPAGE = "https://wywu.github.io/projects/LAB/WFLW.html"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download WFLW_images.tar.gz and WFLW_annotations.tar.gz from https://wywu.github.io/projects/LAB/WFLW.html
    and extract both into `manual_dir`, which then holds:
      WFLW_images/<event folder>/<image>.jpg          (e.g. WFLW_images/51--Dancing/51_Dancing_Dancing_51_1.jpg)
      WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_train.txt
      WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt
    (The per-attribute lists in WFLW_annotations/list_98pt_test/ are not needed: the six attribute flags of
    every face are read from the main lists.)
    """

    def _extra_features(self) -> dict:
        return {"attributes": flag_features(WFLW_ATTRIBUTES)}

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        return {split: self._generate_examples(self._read(root, split)) for split in ("train", "test")}

    def _read(self, root: Path, split: str) -> list[Face]:
        lst = root / LISTS / f"list_98pt_rect_attr_{split}.txt"
        faces, counts = [], {}
        for line, pts, box, attrs, image in read_wflw_list(lst, 98):
            i = counts.get(image, 0)
            counts[image] = i + 1
            faces.append(Face(
                key=f"{image}#{i}", image=root / IMAGES / image, filename=image, face_index=i,
                # WFLW coordinates are 0-based pixel centres (OpenCV convention) [inferred]: ours = file + 0.5;
                # the rectangle gives the first and last pixel (0-based, inclusive)
                landmarks=pts + 0.5, bbox=pixel_index_box(*box, base=0),
                extras={"attributes": dict(zip(WFLW_ATTRIBUTES, (bool(a) for a in attrs)))},
                source=(lst, line)))
        return self._finish(faces)
