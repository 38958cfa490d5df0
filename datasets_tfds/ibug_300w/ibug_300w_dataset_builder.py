"""``ibug_300w``: 300-W (iBUG 68 points) from the original per-image ``.pts`` files.

Configs:
* ``split1`` (default; PIPNet, HRNet, UGLLI split 1): ``train`` = AFW + HELEN trainset + LFPW trainset (3148),
  ``test_common`` = HELEN testset + LFPW testset (554), ``test_challenge`` = iBUG (135). The full test set is
  ``split="test_common+test_challenge"`` (689).
* ``split2`` (UGLLI split 2, the 300-W challenge protocol): ``train`` = all 3837 images above,
  ``test_indoor`` / ``test_outdoor`` = the 300-W test set (300 + 300); full test ``"test_indoor+test_outdoor"``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.base import Face, LandmarkBuilder, relpath
from datasets_tfds._common.matfile import cell_items, load_mat
from datasets_tfds._common.parsers import find_image, read_pts, tight_box
from lmkzoo.errors import DatasetFormatError

# (folder under the manual dir, source name, subset, boxes file stem)
_TRAIN = [("afw", "afw", "train", "afw"), ("helen/trainset", "helen", "train", "helen_trainset"),
          ("lfpw/trainset", "lfpw", "train", "lfpw_trainset")]
_COMMON = [("helen/testset", "helen", "common", "helen_testset"), ("lfpw/testset", "lfpw", "common", "lfpw_testset")]
_CHALLENGE = [("ibug", "ibug", "challenge", "ibug")]
_INDOOR = [("300W/01_Indoor", "300w", "indoor", None)]
_OUTDOOR = [("300W/02_Outdoor", "300w", "outdoor", None)]
BOXES_FOLDER = "Bounding Boxes"


@dataclasses.dataclass
class Ibug300wConfig(tfds.core.BuilderConfig):
    """``splits``: {split: [(folder, source, subset, boxes stem), ...]}."""

    splits: dict = dataclasses.field(default_factory=dict)


class Builder(LandmarkBuilder):
    """300-W: one example per ``.pts`` file (300-W stores one face per image file)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    SCHEME = "ibug68"
    HOMEPAGE = "https://ibug.doc.ic.ac.uk/resources/300-W/"
    BUILDER_CONFIGS = [
        Ibug300wConfig(name="split1", description="Train 3148 (AFW, HELEN/LFPW train); test common 554 / challenge 135.",
                       splits={"train": _TRAIN, "test_common": _COMMON, "test_challenge": _CHALLENGE}),
        Ibug300wConfig(name="split2", description="Train on all 3837 images; test on 300-W indoor / outdoor (600).",
                       splits={"train": _TRAIN + _COMMON + _CHALLENGE, "test_indoor": _INDOOR,
                               "test_outdoor": _OUTDOOR}),
    ]
    DEFAULT_CONFIG_NAME = "split1"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the 300-W data from https://ibug.doc.ic.ac.uk/resources/300-W/ (and the 300-W test set,
    300w.zip / 300W/{01_Indoor,02_Outdoor}) and extract it so that `manual_dir` holds:
      afw/*.jpg + *.pts
      helen/trainset/*.jpg + *.pts      helen/testset/*.jpg + *.pts
      lfpw/trainset/*.png + *.pts       lfpw/testset/*.png + *.pts
      ibug/*.jpg + *.pts
      300W/01_Indoor/*.png + *.pts      300W/02_Outdoor/*.png + *.pts      (only for config split2)
    Optional: the 300-W face-detector boxes ("Bounding Boxes" archive, bounding_boxes_<set>.mat) in
      "Bounding Boxes/bounding_boxes_{afw,helen_trainset,helen_testset,lfpw_trainset,lfpw_testset,ibug}.mat"
    fill the `detector_bbox` feature (NaN where absent).
    """

    def _extra_features(self) -> dict:
        return {
            "source": tfds.features.Text(),
            "subset": tfds.features.Text(),
            "detector_bbox": tfds.features.Tensor(shape=(4,), dtype=np.float32),
        }

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        return {split: self._generate_examples(self._read_split(root, folders))
                for split, folders in self.builder_config.splits.items()}

    def _read_split(self, root: Path, folders) -> list[Face]:
        faces = []
        for folder, source, subset, boxes_stem in folders:
            d = root / folder
            files = sorted(d.glob("*.pts"))
            if not files:
                raise DatasetFormatError(f"no .pts files in {folder!r} (see MANUAL_DOWNLOAD_INSTRUCTIONS)", path=d)
            det = read_detector_boxes(root / BOXES_FOLDER / f"bounding_boxes_{boxes_stem}.mat") if boxes_stem else {}
            for pts_file in files:
                img = find_image(d, pts_file.stem)
                if img is None:
                    raise DatasetFormatError(f"no image file {pts_file.stem}.<jpg|png> beside it", path=pts_file)
                pts = read_pts(pts_file, 68)
                faces.append(Face(
                    key=relpath(pts_file, root), image=img, filename=relpath(img, root), landmarks=pts,
                    bbox=tight_box(pts),
                    extras={"source": source, "subset": subset,
                            "detector_bbox": det.get(img.name, np.full(4, np.nan, np.float32))},
                    source=(pts_file, None)))
        return self._finish(faces)


def read_detector_boxes(path: Path) -> dict:
    """``bounding_boxes_<set>.mat`` → {image name: detector box (x0, y0, x1, y1)}; {} when the file is absent.

    The boxes are MATLAB 1-based inclusive pixel ranges ``[x0 y0 x1 y1]``, so in lmkzoo's corner convention the
    box spans ``(x0 - 1, y0 - 1, x1, y1)`` [inferred from the 1-based .pts convention of the same release].
    """
    if not path.exists():
        return {}
    mat = load_mat(path, ["bounding_boxes"])
    out = {}
    for i, entry in enumerate(cell_items(mat["bounding_boxes"], path=path, name="bounding_boxes")):
        try:
            name = _field(entry, "imgName")
            box = np.asarray(_field(entry, "bb_detector"), np.float64).reshape(4)
        except (KeyError, ValueError, IndexError) as e:
            raise DatasetFormatError(f"bounding_boxes entry {i + 1} lacks imgName / bb_detector ({e})", path=path) from None
        out[str(name)] = np.array([box[0] - 1, box[1] - 1, box[2], box[3]], np.float32)
    return out


def _field(entry, name):
    """A field of a MATLAB struct as scipy (record array) or the v7.3 reader (dict) returns it."""
    v = entry[name]
    while isinstance(v, np.ndarray) and v.dtype == object and v.size == 1:
        v = v.reshape(-1)[0]
    if isinstance(v, np.ndarray) and v.dtype.kind == "U":
        v = "".join(v.reshape(-1).tolist())
    return v
