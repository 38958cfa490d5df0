"""``ibug_300w``: 300-W (iBUG 68 points) from the original per-image ``.pts`` files.

Configs:
* ``split1`` (default; PIPNet, HRNet, UGLLI split 1): ``train`` = AFW + HELEN trainset + LFPW trainset (3148),
  ``test_common`` = HELEN testset + LFPW testset (554), ``test_challenge`` = iBUG (135). The full test set is
  ``split="test_common+test_challenge"`` (689).
* ``split2`` (UGLLI split 2, the 300-W challenge protocol): ``train`` = all 3837 images above,
  ``test_indoor`` / ``test_outdoor`` = the 300-W test set (300 + 300); full test ``"test_indoor+test_outdoor"``.

A partial copy builds what its files support: a split whose folders are all missing is left out, a split with some
folders missing is built from the others, and both are stated (a warning at build time, and
``info.metadata["missing"]`` / ``["faces"]`` in the built dataset: each folder's count against the official one).
A copy with none of a config's folders raises :class:`~lmkzoo.errors.DatasetFormatError` listing them.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
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
#: faces in each folder of the official release (300-W, Sagonas et al. 2016)
OFFICIAL_FACES = {"afw": 337, "helen/trainset": 2000, "lfpw/trainset": 811, "helen/testset": 330,
                  "lfpw/testset": 224, "ibug": 135, "300W/01_Indoor": 300, "300W/02_Outdoor": 300}


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

    def _info(self) -> tfds.core.DatasetInfo:
        info = super()._info()
        info.metadata.update(missing=[], faces={})
        return info

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        inventory = survey(root, self.builder_config.splits)
        missing = sorted({f for split in inventory.values() for f, n in split.items() if n == 0})
        if all(n == 0 for split in inventory.values() for n in split.values()):
            raise DatasetFormatError(
                f"none of the 300-W folders of config {self.builder_config.name!r} holds a .pts file (looked for "
                f"{', '.join(sorted(missing))}; see MANUAL_DOWNLOAD_INSTRUCTIONS)", path=root)
        counts = {f: n for split in inventory.values() for f, n in split.items()}
        self.info.metadata["missing"] = missing
        self.info.metadata["faces"] = {f: [n, OFFICIAL_FACES.get(f)] for f, n in sorted(counts.items())}
        statement = describe(inventory)
        if statement:
            logging.warning("ibug_300w/%s: %s", self.builder_config.name, statement)
            warnings.warn(f"ibug_300w/{self.builder_config.name}: {statement}", PartialDatasetWarning, stacklevel=2)
        return {split: self._generate_examples(self._read_split(root, [f for f in folders if inventory[split][f[0]]]))
                for split, folders in self.builder_config.splits.items() if any(inventory[split].values())}

    def _read_split(self, root: Path, folders) -> list[Face]:
        faces = []
        for folder, source, subset, boxes_stem in folders:
            d = root / folder
            files = sorted(d.glob("*.pts"))
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


class PartialDatasetWarning(UserWarning):
    """A 300-W copy lacks folders (their splits are left out) or holds fewer faces than the official release."""


def survey(root: Path, splits: dict) -> dict:
    """``{split: {folder: number of .pts files}}`` of a manual dir (0 for a missing or empty folder)."""
    return {split: {folder: len(list((Path(root) / folder).glob("*.pts"))) for folder, *_ in folders}
            for split, folders in splits.items()}


def describe(inventory: dict) -> str:
    """What a partial copy lacks, in words; "" for a complete one."""
    parts = []
    for split, folders in inventory.items():
        absent = [f for f, n in folders.items() if n == 0]
        if absent and len(absent) == len(folders):
            parts.append(f"split {split!r} left out (no .pts files in {', '.join(absent)})")
        elif absent:
            parts.append(f"split {split!r} built without {', '.join(absent)} (no .pts files there)")
    short = [f"{f}: {n} of {OFFICIAL_FACES[f]} faces" for f, n in sorted({f: n for s in inventory.values()
                                                                           for f, n in s.items()}.items())
             if 0 < n < OFFICIAL_FACES.get(f, 0)]
    if short:
        parts.append("fewer faces than the official release in " + "; ".join(short))
    return "; ".join(parts)


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
