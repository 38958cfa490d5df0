"""``jd_landmark``: the JD-landmark 106-point Grand Challenge data (v1: ICME 2019, v2: ICPR 2020).

Both releases share one layout: ``<split folder>/[<subset>/]picture/<name>.jpg`` with
``landmark/<name>.jpg.txt`` (line 1 the count ``106``, then ``x y`` per line) and, where the release has them,
``rect/`` (or ``bbox/``) ``<name>.jpg.rect`` (``min_x min_y max_x max_y``). Split folders: ``Training_data``
→ ``train``, ``Validation_data`` → ``validation``, ``Test_data*`` → ``test``; splits whose folder is absent are
not generated.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow_datasets as tfds

from datasets_tfds._common.base import Face, LandmarkBuilder, relpath
from datasets_tfds._common.parsers import pixel_index_box, read_count_points_txt, read_rect, tight_box
from lmkzoo.errors import DatasetFormatError

SPLIT_FOLDERS = {"train": ("Training_data",), "validation": ("Validation_data",), "test": ("Test_data*",)}


@dataclasses.dataclass
class JdConfig(tfds.core.BuilderConfig):
    """``folder``: the release's folder under ``manual_dir`` (``manual_dir`` itself when it holds the split
    folders directly)."""

    folder: str = "JD-landmark"


class Builder(LandmarkBuilder):
    """JD-landmark: one example per landmark file (one face per picture)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    SCHEME = "jd106"
    HOMEPAGE = "https://facial-landmarks-localization-challenge.github.io/"
    BUILDER_CONFIGS = [
        JdConfig(name="v1", description="JD-landmark (1st challenge, ICME 2019; about 16k images).",
                 folder="JD-landmark"),
        JdConfig(name="v2", description="JD-landmark-v2 (2nd challenge, ICPR 2020; more than 24k images).",
                 folder="JD-landmark-v2"),
    ]
    DEFAULT_CONFIG_NAME = "v1"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Request the data from the challenge organisers (https://facial-landmarks-localization-challenge.github.io/)
    and extract each release into its own folder under `manual_dir`:
      JD-landmark/        (config v1)      JD-landmark-v2/     (config v2)
    each holding the split folders as released:
      Training_data/<AFW|HELEN|IBUG|LFPW>/picture/<name>.jpg
      Training_data/<AFW|HELEN|IBUG|LFPW>/landmark/<name>.jpg.txt
      Training_data/<...>/rect/<name>.jpg.rect      (optional boxes; also accepted as bbox/)
      Validation_data/{picture,landmark,rect}/...   (optional)
      Test_data*/{picture,landmark,rect}/...        (optional)
    If `manual_dir` itself holds Training_data/, it is used for either config.
    """

    def _extra_features(self) -> dict:
        return {"subset": tfds.features.Text()}

    def _root(self, manual: Path) -> Path:
        r = manual / self.builder_config.folder
        if r.is_dir():
            return r
        if (manual / "Training_data").is_dir():
            return manual
        raise DatasetFormatError(f"neither {self.builder_config.folder}/Training_data nor Training_data found "
                                 "(see MANUAL_DOWNLOAD_INSTRUCTIONS)", path=manual)

    def _split_generators(self, dl_manager):
        root = self._root(Path(dl_manager.manual_dir))
        out = {}
        for split, patterns in SPLIT_FOLDERS.items():
            tops = sorted(p for pat in patterns for p in root.glob(pat) if p.is_dir())
            if tops:
                out[split] = self._generate_examples(self._read(root, tops))
        if "train" not in out:
            raise DatasetFormatError("no Training_data folder", path=root)
        return out

    def _read(self, root: Path, tops) -> list[Face]:
        faces = []
        for top in tops:
            lm_dirs = sorted(p for p in [top / "landmark", *top.glob("*/landmark")] if p.is_dir())
            if not lm_dirs:
                raise DatasetFormatError("no landmark/ folder", path=top)
            for lm_dir in lm_dirs:
                base = lm_dir.parent
                subset = base.name if base != top else ""
                for txt in sorted(lm_dir.glob("*.txt")):
                    image_name = txt.name[: -len(".txt")]  # <name>.jpg.txt → <name>.jpg
                    img = base / "picture" / image_name
                    # coordinates are 0-based pixel centres [inferred]: ours = file + 0.5
                    pts = read_count_points_txt(txt, 106) + 0.5
                    rect = next((p for p in (base / "rect" / f"{image_name}.rect", base / "bbox" / f"{image_name}.rect")
                                 if p.exists()), None)
                    # rect: first and last pixel (0-based, inclusive) of the face
                    box = pixel_index_box(*read_rect(rect), base=0) if rect is not None else tight_box(pts)
                    faces.append(Face(key=relpath(txt, root), image=img, filename=relpath(img, root), landmarks=pts,
                                      bbox=box, extras={"subset": subset}, source=(txt, None)))
        return self._finish(faces)
