"""``aflw19``: AFLW with the 19-point AFLW-Full annotations of ``AFLWinfo_release.mat`` (Zhu et al., CFSS).

Splits follow the release's permutation ``ra``: ``train`` = the first 20000 rows of ``ra``, ``test`` (AFLW-Full)
= the remaining 4386, ``test_frontal`` (AFLW-Frontal) = the test faces whose 19 points are all visible
(``mask_new`` all 1), a subset of ``test``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.base import Face, LandmarkBuilder
from datasets_tfds._common.matfile import cell_items, load_mat
from datasets_tfds._common.parsers import pixel_index_box
from lmkzoo.errors import DatasetFormatError

INFO = "AFLWinfo_release.mat"
IMAGES = "data/flickr"
NUM_TRAIN = 20000


@dataclasses.dataclass
class Aflw19Config(tfds.core.BuilderConfig):
    """``num_train``: the first ``num_train`` rows of ``ra`` are the training split (20000 in the release)."""

    num_train: int = NUM_TRAIN


class Builder(LandmarkBuilder):
    """AFLW-19: one example per row of ``AFLWinfo_release.mat`` (one face each)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    SCHEME = "aflw19"
    HOMEPAGE = "https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/aflw/"
    BUILDER_CONFIGS = [Aflw19Config(name="default", description="The release split: 20000 train, 4386 test.")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Request AFLW from https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/aflw/ and get
    AFLWinfo_release.mat (the 19-point AFLW-Full annotations of Zhu et al., CVPR 2016, distributed with CFSS /
    PIPNet). `manual_dir` then holds:
      AFLWinfo_release.mat                 (bbox, data, mask_new, nameList, ra)
      data/flickr/<0|2|3>/image*.jpg       (the AFLW images; nameList paths are relative to data/flickr)
    """

    def _extra_features(self) -> dict:
        return {"occluded": tfds.features.Tensor(shape=(19,), dtype=np.bool_), "frontal": np.bool_}

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        rows = self._read(root)
        n, n_train = len(rows), int(self.builder_config.num_train)
        if not 0 < n_train < n:
            raise DatasetFormatError(f"{INFO} holds {n} faces, so the first {n_train} rows of ra cannot be the "
                                     "training split", path=root / INFO)
        train, test = rows[:n_train], rows[n_train:]
        return {
            "train": self._generate_examples(train),
            "test": self._generate_examples(test),
            "test_frontal": self._generate_examples([f for f in test if f.extras["frontal"]]),
        }

    def _read(self, root: Path) -> list[Face]:
        path = root / INFO
        mat = load_mat(path, ["bbox", "data", "mask_new", "nameList", "ra"])
        names = [_as_str(v) for v in cell_items(mat["nameList"], path=path, name="nameList")]
        n = len(names)
        data = np.asarray(mat["data"], np.float64)
        boxes = np.asarray(mat["bbox"], np.float64)
        mask = np.asarray(mat["mask_new"], np.float64)
        ra = np.asarray(mat["ra"], np.float64).reshape(-1)
        for var, arr, cols in (("data", data, 38), ("bbox", boxes, 4), ("mask_new", mask, 19)):
            if arr.shape != (n, cols):
                raise DatasetFormatError(f"{var} must be {n} x {cols} for {n} names; got {arr.shape}", path=path)
        if sorted(ra.astype(np.int64).tolist()) != list(range(1, n + 1)) or not np.all(ra == np.round(ra)):
            raise DatasetFormatError(f"ra must be a 1-based permutation of 1..{n}", path=path)
        faces = []
        for r in (ra.astype(np.int64) - 1):
            row = int(r) + 1
            xy = np.stack([data[r, :19], data[r, 19:]], 1)
            if not np.all(np.isfinite(xy)) or not np.all(np.isfinite(boxes[r])):
                raise DatasetFormatError(f"row {row}: non-finite value", path=path, line=row)
            if not np.all(np.isin(mask[r], (0, 1))):
                raise DatasetFormatError(f"row {row}: mask_new must be 0 or 1", path=path, line=row)
            x0, x1, y0, y1 = boxes[r]  # AFLW order: xmin, xmax, ymin, ymax
            faces.append(Face(
                key=f"{row:05d}", image=root / IMAGES / names[r], filename=names[r],
                # MATLAB 1-based pixel coordinates: ours = file - 0.5; points at (<=0, <=0) carry no position
                landmarks=xy - 0.5, visible=~((xy[:, 0] <= 0) & (xy[:, 1] <= 0)),
                bbox=pixel_index_box(x0, y0, x1, y1, base=1),
                extras={"occluded": mask[r] == 0, "frontal": bool(np.all(mask[r] == 1))}, source=(path, row)))
        return self._finish(faces)


def _as_str(v) -> str:
    while isinstance(v, np.ndarray) and v.dtype == object and v.size == 1:
        v = v.reshape(-1)[0]
    if isinstance(v, np.ndarray):
        v = "".join(v.reshape(-1).tolist())
    return str(v)
