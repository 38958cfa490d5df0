"""``menpo2d``: the Menpo 2D benchmark (Zafeiriou et al. 2017), semi-frontal (68 points) and profile (39 points).

Menpo ships one folder per split with a 300-W style ``.pts`` beside each image; semi-frontal and profile faces
are mixed and told apart by their point count (68 vs 39), as LUVLi's ``organize_menpo_train.py`` does. Each
config keeps the faces of its own count.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow_datasets as tfds

from datasets_tfds._common.base import Face, LandmarkBuilder, relpath
from datasets_tfds._common.parsers import find_image, read_pts, tight_box
from lmkzoo import schemes
from lmkzoo.errors import DatasetFormatError

SPLIT_FOLDERS = {"train": "trainset", "test": "testset"}
COUNTS = (68, 39)


@dataclasses.dataclass
class MenpoConfig(tfds.core.BuilderConfig):
    scheme: str = "ibug68"


class Builder(LandmarkBuilder):
    """Menpo 2D: one example per ``.pts`` file of the config's point count."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    HOMEPAGE = "https://ibug.doc.ic.ac.uk/resources/2nd-facial-landmark-tracking-competition-menpo-ben/"
    BUILDER_CONFIGS = [
        MenpoConfig(name="semifrontal", description="Semi-frontal faces, iBUG 68 points.", scheme="ibug68"),
        MenpoConfig(name="profile", description="Profile faces, 39 points.", scheme="menpo39"),
    ]
    DEFAULT_CONFIG_NAME = "semifrontal"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Request the Menpo 2D benchmark from https://ibug.doc.ic.ac.uk/resources/2nd-facial-landmark-tracking-competition-menpo-ben/
    and extract it so that `manual_dir` holds:
      trainset/<name>.jpg|png + <name>.pts     (68-point semi-frontal and 39-point profile faces mixed)
      testset/<name>.jpg|png + <name>.pts      (optional: the test annotations, same layout)
    """

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        out = {}
        for split, folder in SPLIT_FOLDERS.items():
            if (root / folder).is_dir():
                out[split] = self._generate_examples(self._read(root, root / folder))
        if not out:
            raise DatasetFormatError(f"none of {sorted(SPLIT_FOLDERS.values())} found (see MANUAL_DOWNLOAD_INSTRUCTIONS)",
                                     path=root)
        return out

    def _read(self, root: Path, folder: Path) -> list[Face]:
        k = schemes.get(self._scheme()).num_points
        files = sorted(folder.rglob("*.pts"))
        if not files:
            raise DatasetFormatError("no .pts files", path=folder)
        faces = []
        for pts_file in files:
            pts = read_pts(pts_file, allowed_counts=COUNTS)  # 1-based: ours = file - 0.5
            if len(pts) != k:
                continue
            img = find_image(pts_file.parent, pts_file.stem)
            if img is None:
                raise DatasetFormatError(f"no image file {pts_file.stem}.<jpg|png> beside it", path=pts_file)
            faces.append(Face(key=relpath(pts_file, root), image=img, filename=relpath(img, root), landmarks=pts,
                              bbox=tight_box(pts), source=(pts_file, None)))
        return self._finish(faces)
