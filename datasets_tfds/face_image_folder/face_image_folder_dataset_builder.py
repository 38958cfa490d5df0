"""``face_image_folder``: unlabelled face images (CelebA, MegaFace, LFW or any folder) for semi-supervised training.

Each example is one image with its relative file name and a face box; without a box file the box is the whole
image (``(0, 0, W, H)``), which suits face crops such as CelebA's aligned images or LFW.

Configs:
* ``folder`` (default): every image under ``manual_dir`` (recursively), split ``train``; an optional
  ``boxes.csv`` (``image, x0, y0, x1, y1`` in lmkzoo's convention) gives boxes instead of the whole image.
* ``celeba``: ``img_align_celeba/`` with CelebA's ``list_eval_partition.txt`` (0/1/2 → train / validation /
  test).
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.base import check_image_file
from datasets_tfds._common.features import face_image_features
from datasets_tfds._common.parsers import IMAGE_SUFFIXES, parse_floats, read_text_lines
from lmkzoo.errors import DatasetFormatError

BOXES_CSV = "boxes.csv"


@dataclasses.dataclass
class FaceImageFolderConfig(tfds.core.BuilderConfig):
    """``layout``: ``folder`` or ``celeba``; ``image_folder``: where the images are, under ``manual_dir``."""

    layout: str = "folder"
    image_folder: str = ""


class Builder(tfds.core.GeneratorBasedBuilder):
    """Unlabelled face images: ``image``, ``image/filename``, ``bbox``."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        FaceImageFolderConfig(name="folder", description="Every image under the folder; optional boxes.csv."),
        FaceImageFolderConfig(name="celeba", description="CelebA aligned images with the official partition.",
                              layout="celeba", image_folder="img_align_celeba"),
    ]
    DEFAULT_CONFIG_NAME = "folder"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    folder: point `manual_dir` at any folder of face images (.jpg/.jpeg/.png/.bmp, searched recursively), e.g. an
      LFW folder (lfw/<Person>/<Person>_0001.jpg), MegaFace's FlickrFinal2/<id>/*.jpg or CelebA's
      img_align_celeba/. Optional `boxes.csv` at its top: header `image,x0,y0,x1,y1`, one face box per image
      (image paths relative to `manual_dir`, boxes in lmkzoo's pixel convention).
    celeba: download CelebA (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html) so that `manual_dir` holds
      img_align_celeba/000001.jpg ... and list_eval_partition.txt (`<image> <0|1|2>` per line).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=face_image_features(),
            supervised_keys=None,
            homepage="https://github.com/lmkzoo/lmkzoo",
        )

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        cfg = self.builder_config
        if cfg.layout == "celeba":
            return {s: self._generate_examples(items) for s, items in self._read_celeba(root).items()}
        if cfg.layout != "folder":
            raise DatasetFormatError(f"layout must be 'folder' or 'celeba'; got {cfg.layout!r}")
        folder = root / cfg.image_folder
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in IMAGE_SUFFIXES)
        if not files:
            raise DatasetFormatError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found", path=folder)
        boxes = _read_boxes_csv(root / BOXES_CSV, root) if (root / BOXES_CSV).exists() else {}
        return {"train": self._generate_examples(_items(files, root, boxes))}

    def _read_celeba(self, root: Path) -> dict:
        folder = root / self.builder_config.image_folder
        if not folder.is_dir():
            raise DatasetFormatError(f"{self.builder_config.image_folder}/ not found (see MANUAL_DOWNLOAD_INSTRUCTIONS)",
                                     path=root)
        part_file = root / "list_eval_partition.txt"
        names = {0: "train", 1: "validation", 2: "test"}
        splits: dict = {}
        for i, text in enumerate(read_text_lines(part_file, "partition file")):
            parts = text.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetFormatError(f"expected '<image> <0|1|2>', got {text!r}", path=part_file, line=i + 1)
            img = folder / parts[0]
            if not img.is_file():
                raise DatasetFormatError(f"image {parts[0]!r} is missing", path=part_file, line=i + 1)
            splits.setdefault(names[int(parts[1])], []).append(img)
        if not splits:
            raise DatasetFormatError("empty partition file", path=part_file)
        return {s: _items(files, root, {}) for s, files in splits.items()}

    def _generate_examples(self, items):
        for rel, path, box in items:
            yield rel, {"image": str(path), "image/filename": rel, "bbox": box}


def _items(files, root: Path, boxes: dict) -> list:
    out = []
    for p in files:
        check_image_file(p)  # every image decodes, before anything is written
        rel = p.relative_to(root).as_posix()
        box = boxes.get(rel)
        if box is None:
            w, h = _image_size(p)
            box = np.array([0.0, 0.0, w, h], np.float32)
        out.append((rel, p, box))
    return out


def _image_size(path: Path):
    """(W, H) from the file header (no full decode); unreadable files raise naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as e:
        raise DatasetFormatError(f"unreadable image ({e})", path=path) from None


def _read_boxes_csv(path: Path, root: Path) -> dict:
    out = {}
    lines = read_text_lines(path, "boxes file")
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["image", "x0", "y0", "x1", "y1"]:
        raise DatasetFormatError(f"header must be image,x0,y0,x1,y1; got {header}", path=path, line=1)
    for ln, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != 5:
            raise DatasetFormatError(f"expected 5 columns, got {len(row)}", path=path, line=ln)
        box = parse_floats(row[1:], path=path, line=ln, what="box value")
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DatasetFormatError(f"empty box {row[1:]}", path=path, line=ln)
        if not (root / row[0]).is_file():
            raise DatasetFormatError(f"image {row[0]!r} is missing", path=path, line=ln)
        out[row[0]] = box.astype(np.float32)
    return out
