"""``cofw``: Caltech Occluded Faces in the Wild, from the original ``.mat`` files.

Configs:
* ``cofw29`` (default): the original 29 points with occlusion flags, ``train`` 1345 / ``test`` 507.
* ``cofw68``: the 507 test images re-annotated with the iBUG 68 points (Ghiasi & Fowlkes, cofw68-benchmark),
  split ``test`` only; PIPNet's cross-dataset benchmark.

The images live inside the ``.mat`` files (cell arrays ``IsTr`` / ``IsT``). Both MAT v7.3 (HDF5; the colour
release) and older MAT versions (scipy) are read (:mod:`datasets_tfds._common.matfile`).
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

# split → (candidate files, images var, shapes var, boxes var)
_MATS = {
    "train": (("COFW_train_color.mat", "COFW_train.mat"), "IsTr", "phisTr", "bboxesTr"),
    "test": (("COFW_test_color.mat", "COFW_test.mat"), "IsT", "phisT", "bboxesT"),
}
_COFW68_ANNOTATIONS = ("cofw68_test_annotations", "COFW68_Data/test_annotations")
_COFW68_BOXES = ("cofw68_test_bboxes.mat", "COFW68_Data/cofw68_test_bboxes.mat")


@dataclasses.dataclass
class CofwConfig(tfds.core.BuilderConfig):
    scheme: str = "cofw29"


class Builder(LandmarkBuilder):
    """COFW: one example per face (one face per image)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    HOMEPAGE = "https://data.caltech.edu/records/bc0bf-nc666"
    BUILDER_CONFIGS = [
        CofwConfig(name="cofw29", description="Original 29-point annotations with occlusion flags (train / test).",
                   scheme="cofw29"),
        CofwConfig(name="cofw68", description="The 507 test faces with the 68-point cofw68-benchmark annotations.",
                   scheme="ibug68"),
    ]
    DEFAULT_CONFIG_NAME = "cofw29"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    cofw29: download COFW_color.zip (http://www.vision.caltech.edu/xpburgos/ICCV13/, now
    https://data.caltech.edu/records/bc0bf-nc666) and put into `manual_dir`:
      COFW_train_color.mat   (IsTr, phisTr, bboxesTr)
      COFW_test_color.mat    (IsT, phisT, bboxesT)
    (the grey-level release COFW_train.mat / COFW_test.mat is read too when the colour files are absent).
    cofw68: additionally COFW_test_color.mat's 68-point annotations from
    https://github.com/golnazghiasi/cofw68-benchmark, either as PIPNet lays them out
      cofw68_test_annotations/<i>_points.mat   and   cofw68_test_bboxes.mat
    or as the repository ships them: COFW68_Data/test_annotations/<i>_points.mat, COFW68_Data/cofw68_test_bboxes.mat.
    """

    def _extra_features(self) -> dict:
        k = 29 if self.builder_config.name == "cofw29" else 68
        return {"occluded": tfds.features.Tensor(shape=(k,), dtype=np.bool_)}

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        if self.builder_config.name == "cofw68":
            return {"test": self._generate_examples(self._read_cofw68(root))}
        return {split: self._generate_examples(self._read_cofw29(root, split)) for split in ("train", "test")}

    # ------------------------------------------------------------------------------------------ reading
    @staticmethod
    def _find(root: Path, candidates) -> Path:
        for c in candidates:
            if (root / c).exists():
                return root / c
        raise DatasetFormatError(f"none of {list(candidates)} found (see MANUAL_DOWNLOAD_INSTRUCTIONS)", path=root)

    def _load_split_mat(self, root: Path, split: str):
        names, img_var, phis_var, box_var = _MATS[split]
        path = self._find(root, names)
        mat = load_mat(path, [img_var, phis_var, box_var])
        images = [_rgb(im, path, i) for i, im in enumerate(cell_items(mat[img_var], path=path, name=img_var))]
        phis = np.asarray(mat[phis_var], np.float64)
        boxes = np.asarray(mat[box_var], np.float64)
        n = len(images)
        if phis.shape != (n, 87):
            raise DatasetFormatError(f"{phis_var} must be {n} x 87 (x 29, y 29, occlusion 29) for {n} images; got "
                                     f"{phis.shape}", path=path)
        if boxes.shape != (n, 4):
            raise DatasetFormatError(f"{box_var} must be {n} x 4 (x, y, w, h); got {boxes.shape}", path=path)
        return path, images, phis, boxes

    def _read_cofw29(self, root: Path, split: str) -> list[Face]:
        path, images, phis, boxes = self._load_split_mat(root, split)
        faces = []
        for i, (img, phi, box) in enumerate(zip(images, phis, boxes)):
            if not np.all(np.isfinite(phi)) or not np.all(np.isfinite(box)):
                raise DatasetFormatError(f"row {i + 1}: non-finite value", path=path, line=i + 1)
            occ = phi[58:87]
            if not np.all(np.isin(occ, (0, 1))):
                raise DatasetFormatError(f"row {i + 1}: occlusion flags must be 0 or 1, got {sorted(set(occ))}",
                                         path=path, line=i + 1)
            faces.append(Face(
                key=f"{split}/{i + 1:04d}", image=img, filename=f"{path.name}/{i + 1:04d}",
                # MATLAB 1-based pixel coordinates: ours = file - 0.5; boxes (x, y, w, h) cover pixels x .. x+w-1
                landmarks=np.stack([phi[0:29], phi[29:58]], 1) - 0.5,
                bbox=pixel_index_box(box[0], box[1], box[0] + box[2] - 1, box[1] + box[3] - 1, base=1),
                extras={"occluded": occ.astype(bool)}, source=(path, i + 1)))
        return self._finish(faces)

    def _read_cofw68(self, root: Path) -> list[Face]:
        path, images, _, _ = self._load_split_mat(root, "test")
        ann_dir = self._find(root, _COFW68_ANNOTATIONS)
        box_file = self._find(root, _COFW68_BOXES)
        boxes = np.asarray(load_mat(box_file, ["bboxes"])["bboxes"], np.float64)
        if boxes.shape != (len(images), 4):
            raise DatasetFormatError(f"bboxes must be {len(images)} x 4 (x, y, w, h); got {boxes.shape}", path=box_file)
        faces = []
        for i, img in enumerate(images):
            pf = ann_dir / f"{i + 1}_points.mat"
            ann = load_mat(pf, ["Points", "Occ"])
            pts = np.asarray(ann["Points"], np.float64)
            occ = np.asarray(ann["Occ"], np.float64).reshape(-1)
            if pts.shape != (68, 2):
                raise DatasetFormatError(f"Points must be 68 x 2; got {pts.shape}", path=pf)
            if occ.shape != (68,):
                raise DatasetFormatError(f"Occ must hold 68 flags; got {occ.size}", path=pf)
            b = boxes[i]
            faces.append(Face(
                key=f"test/{i + 1:04d}", image=img, filename=f"{path.name}/{i + 1:04d}", landmarks=pts - 0.5,
                bbox=pixel_index_box(b[0], b[1], b[0] + b[2] - 1, b[1] + b[3] - 1, base=1),
                extras={"occluded": occ > 0.5}, source=(pf, None)))
        return self._finish(faces)


def _rgb(image, path, i) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise DatasetFormatError(f"image {i + 1} must be uint8; got {a.dtype}", path=path, line=i + 1)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise DatasetFormatError(f"image {i + 1} must be H x W (grey) or H x W x 3; got {a.shape}", path=path,
                                 line=i + 1)
    return np.ascontiguousarray(a)
