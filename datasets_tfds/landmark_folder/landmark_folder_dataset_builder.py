"""``landmark_folder``: any folder of face images with landmark annotations, as a TFDS dataset.

Three annotation formats (``LandmarkFolderConfig.format``):

* ``pts``: iBUG ``.pts`` files beside the images (``img.pts`` for ``img.jpg``; several faces as
  ``img_0.pts``, ``img_1.pts``); per split a glob pattern relative to the manual folder.
* ``dlib_xml``: dlib imglab XML files (boxes + parts); per split one XML file.
* ``csv``: a CSV with ``image``, ``x0, y0, ..., x{K-1}, y{K-1}`` (+ optional ``face_found``, ``visible{i}``,
  ``box_*``); per split one CSV file.

A ``holdout`` moves whole groups (the first folder of the image path, e.g. the person in LFW) from one
split into a new one, deterministically, so identities never leak between training and validation.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.base import check_image_file
from datasets_tfds._common.features import landmark_features
from datasets_tfds._common.parsers import find_image, read_dlib_xml, read_points_csv, read_pts, tight_box
from lmkzoo import schemes
from lmkzoo.errors import DatasetFormatError, InvalidArgumentError


@dataclasses.dataclass
class LandmarkFolderConfig(tfds.core.BuilderConfig):
    """Where the annotations are and how to read them.

    Attributes:
        scheme: landmark scheme name (fixes K).
        format: ``pts`` | ``dlib_xml`` | ``csv``.
        splits: ``{split: glob (pts) or file (dlib_xml / csv)}``, relative to the manual folder.
        csv_convention: coordinate convention of a CSV (``corner``, ``center`` or ``pts``).
        boxes_csv: optional CSV (``image, face_index, box_left, box_top, box_width, box_height``) giving the
            dataset's own boxes for ``pts`` folders (faces68_dlib's ``faces.csv``).
        holdout: ``{"name": "validation", "from": "train", "fraction": 0.1, "seed": 0}``: whole groups (the
            first path component) move from ``from`` to ``name``.
    """

    scheme: str = "ibug68"
    format: str = "pts"
    splits: dict = dataclasses.field(default_factory=lambda: {"train": "**/*.pts"})
    csv_convention: str = "corner"
    boxes_csv: str | None = None
    holdout: dict | None = None


class Builder(tfds.core.GeneratorBasedBuilder):
    """Faces with landmarks from a folder (images + .pts / dlib XML / CSV)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        LandmarkFolderConfig(name="pts68", description="iBUG-68 .pts files beside the images, one split 'train'."),
        LandmarkFolderConfig(
            name="lfw_teacher68",
            description="shared/data/lfw_faces: teacher68.csv (MediaPipe FaceMesh mapped to iBUG-68), 10% of the "
            "people held out as 'validation'.",
            format="csv",
            splits={"train": "teacher68.csv"},
            holdout={"name": "validation", "from": "train", "fraction": 0.1, "seed": 0},
        ),
        LandmarkFolderConfig(
            name="dlib_faces68",
            description="shared/data/faces68_dlib: dlib's example faces with its 68-point predictor output, dlib's "
            "own split (training / testing XML).",
            format="dlib_xml",
            splits={"train": "training_with_face_landmarks.xml", "test": "testing_with_face_landmarks.xml"},
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Point `manual_dir` (tfds.download.DownloadConfig(manual_dir=...)) at the folder that holds the images and
    their annotations, laid out as the builder config says:
      pts68:          <folder>/**/<image>.jpg with <image>.pts (or <image>_<k>.pts) beside it
      lfw_teacher68:  <folder>/teacher68.csv and <folder>/<Person>/<file>.jpg (shared/data/lfw_faces)
      dlib_faces68:   <folder>/training_with_face_landmarks.xml, testing_with_face_landmarks.xml and the
                      images they reference (shared/data/faces68_dlib, or dlib's examples/faces)
    A custom LandmarkFolderConfig(...) passed as `config=` reads any other folder.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        k = schemes.get(self.builder_config.scheme).num_points
        return self.dataset_info_from_configs(
            features=landmark_features(k),
            supervised_keys=None,
            homepage="https://github.com/lmkzoo/lmkzoo",
            metadata=tfds.core.MetadataDict(scheme=self.builder_config.scheme),
        )

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        cfg = self.builder_config
        if cfg.format not in ("pts", "dlib_xml", "csv"):
            raise DatasetFormatError(f"format must be pts, dlib_xml or csv; got {cfg.format!r}")
        if cfg.holdout:
            fraction, seed = _check_holdout(cfg.holdout, cfg.splits)
        faces = {split: self._read_split(root, pattern) for split, pattern in cfg.splits.items()}
        for items in faces.values():  # every image decodes, before anything is written
            for it in items:
                check_image_file(it["image"])
        if cfg.holdout:
            h = cfg.holdout
            src = faces[h["from"]]
            groups = sorted({f["rel"].split("/")[0] for f in src})
            rng = np.random.RandomState(seed)
            n_hold = max(1, int(round(len(groups) * fraction)))
            held = set(np.asarray(groups)[rng.permutation(len(groups))[:n_hold]].tolist())
            faces[h["name"]] = [f for f in src if f["rel"].split("/")[0] in held]
            faces[h["from"]] = [f for f in src if f["rel"].split("/")[0] not in held]
        return {split: self._generate_examples(items) for split, items in faces.items()}

    # ------------------------------------------------------------------------------------------ reading
    def _read_split(self, root: Path, pattern: str) -> list[dict]:
        cfg = self.builder_config
        k = schemes.get(cfg.scheme).num_points
        items = []
        if cfg.format == "pts":
            boxes = self._boxes_csv(root) if cfg.boxes_csv else {}
            files = sorted(Path(p) for p in globlib.glob(str(root / pattern), recursive=True))
            if not files:
                raise DatasetFormatError(f"no .pts file matches {pattern!r}", path=root)
            for pts_file in files:
                stem, face_index = pts_file.stem, 0
                img = find_image(pts_file.parent, stem)
                if img is None and "_" in stem and stem.rsplit("_", 1)[1].isdigit():
                    stem, face_index = stem.rsplit("_", 1)[0], int(stem.rsplit("_", 1)[1])
                    img = find_image(pts_file.parent, stem)
                if img is None:
                    raise DatasetFormatError(f"no image found for {pts_file.name}", path=pts_file)
                pts = read_pts(pts_file, k)
                rel = img.relative_to(root).as_posix()
                box = boxes.get((rel, face_index))
                items.append(dict(rel=rel, image=img, face_index=face_index, landmarks=pts, visible=np.ones(k, bool),
                                  bbox=tight_box(pts) if box is None else box))
        elif cfg.format == "dlib_xml":
            xml = root / pattern
            if not xml.exists():
                raise DatasetFormatError("annotation file not found", path=xml)
            for file, faces in read_dlib_xml(xml, k):
                img = root / file
                if not img.exists():
                    raise DatasetFormatError(f"image {file!r} listed in the XML is missing", path=xml)
                for i, (box, pts) in enumerate(faces):
                    if pts is None:
                        continue
                    items.append(dict(rel=Path(file).as_posix(), image=img, face_index=i, landmarks=pts,
                                      visible=np.ones(k, bool), bbox=box))
        else:
            csv_file = root / pattern
            if not csv_file.exists():
                raise DatasetFormatError("annotation file not found", path=csv_file)
            counts: dict[str, int] = {}
            for line, image, pts, vis, box in read_points_csv(csv_file, k, convention=cfg.csv_convention):
                img = root / image
                if not img.exists():
                    raise DatasetFormatError(f"image {image!r} does not exist", path=csv_file, line=line)
                i = counts.get(image, 0)
                counts[image] = i + 1
                items.append(dict(rel=Path(image).as_posix(), image=img, face_index=i, landmarks=pts, visible=vis,
                                  bbox=tight_box(pts, vis) if box is None else box))
        return items

    def _boxes_csv(self, root: Path) -> dict:
        import csv

        path = root / self.builder_config.boxes_csv
        out = {}
        try:
            f = open(path, newline="")
        except OSError as e:
            raise DatasetFormatError(
                f"boxes_csv {self.builder_config.boxes_csv!r} cannot be read ({e.strerror or e}); it must be a CSV "
                "(image, face_index, box_left, box_top, box_width, box_height) relative to the manual folder",
                path=path,
            ) from None
        with f:
            for ln, r in enumerate(csv.DictReader(f), start=2):
                try:
                    x, y = float(r["box_left"]), float(r["box_top"])
                    w, h = float(r["box_width"]), float(r["box_height"])
                    out[(r["image"], int(r["face_index"]))] = np.array([x, y, x + w, y + h], np.float32)
                except (KeyError, ValueError) as e:
                    raise DatasetFormatError(f"bad box row ({e})", path=path, line=ln) from None
        return out

    def _generate_examples(self, items):
        for it in items:
            key = f"{it['rel']}#{it['face_index']}"
            yield key, {
                "image": it["image"],
                "image/filename": it["rel"],
                "face_index": it["face_index"],
                "landmarks": it["landmarks"].astype(np.float32),
                "visible": np.asarray(it["visible"], bool),
                "bbox": np.asarray(it["bbox"], np.float32),
            }


def _check_holdout(holdout, splits) -> tuple[float, int]:
    """``(fraction, seed)`` of a valid ``holdout`` config; errors name the value and what is allowed."""
    if not isinstance(holdout, dict) or not {"name", "from", "fraction"} <= set(holdout):
        raise InvalidArgumentError(
            f"holdout must be a dict with keys 'name', 'from', 'fraction' (and optional 'seed'); got {holdout!r}"
        )
    if holdout["from"] not in splits:
        raise InvalidArgumentError(
            f"holdout['from'] must be one of the config's splits {sorted(splits)}; got {holdout['from']!r}"
        )
    if holdout["name"] in splits:
        raise InvalidArgumentError(
            f"holdout['name'] must be a new split, not one of {sorted(splits)}; got {holdout['name']!r}"
        )
    try:
        fraction = float(holdout["fraction"])
    except (TypeError, ValueError):
        fraction = float("nan")
    if not 0.0 < fraction < 1.0:
        raise InvalidArgumentError(f"holdout['fraction'] must be a number in (0, 1); got {holdout['fraction']!r}")
    seed = holdout.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"holdout['seed'] must be an integer; got {seed!r}")
    return fraction, seed
