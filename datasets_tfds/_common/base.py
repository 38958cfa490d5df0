"""What every lmkzoo landmark builder shares: the face record, its checks and the example writer.

A builder's ``_split_generators`` parses ALL annotations of a split into :class:`Face` records first (so a
malformed file fails before anything is written: TFDS then removes its temporary folder and nothing is left
half-written in the data dir), and ``_generate_examples`` only turns the records into examples.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.features import landmark_features
from lmkzoo import schemes
from lmkzoo.errors import DatasetFormatError

__all__ = ["Face", "LandmarkBuilder", "check_points", "check_image_file", "relpath"]

_CHECKED: dict = {}


def relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (stable keys on every OS)."""
    return Path(path).relative_to(root).as_posix()


def check_points(points, num_points: int, *, path, line=None) -> np.ndarray:
    """``points`` as float32 ``(K, 2)``; a wrong count or a non-finite value raises naming file and line."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise DatasetFormatError(f"points must be (K, 2); got shape {p.shape}", path=path, line=line)
    if p.shape[0] != num_points:
        raise DatasetFormatError(f"expected {num_points} points, got {p.shape[0]}", path=path, line=line)
    if not np.all(np.isfinite(p)):
        raise DatasetFormatError("non-finite coordinate", path=path, line=line)
    return p.astype(np.float32)


def check_image_file(path, *, source=(None, None)) -> Path:
    """Decode the image file ``path`` as the input pipeline will (``tf.io.decode_image``, 3 channels); an image that
    is missing, does not decode, or declares more pixels than PIL accepts (``PIL.Image.MAX_IMAGE_PIXELS``) raises
    :class:`~lmkzoo.errors.DatasetFormatError` naming it (and the annotation file and line that list it, ``source``).

    Builders call it for every image in ``_split_generators``, before anything is written: a bad image stops the
    build there (TFDS removes its temporary folder), instead of producing a dataset whose reading fails later with
    a TensorFlow error that names no file. Each file is decoded once per build (cached by path, size and mtime).
    """
    import tensorflow as tf
    from PIL import Image

    p = Path(path)
    annot, line = source
    where = f" (listed in {annot}" + (f", line {line}" if line is not None else "") + ")" if annot is not None else ""
    try:
        st = p.stat()
    except OSError as e:
        raise DatasetFormatError(f"the image cannot be read{where}: {e.strerror or e}", path=p) from None
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return p
    try:
        with Image.open(p):  # the header only: PIL refuses sizes no photo has (decompression bombs)
            pass
    except Image.DecompressionBombError as e:
        raise DatasetFormatError(f"the image{where} declares too many pixels ({e})", path=p) from None
    except Exception:  # noqa: BLE001 - PIL raises many types; TensorFlow below has the last word
        pass
    try:
        tf.io.decode_image(tf.io.read_file(str(p)), channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, tf.errors.ResourceExhaustedError) as e:
        reason = (e.message or str(e)).splitlines()[0].split("}} ")[-1].split(" [Op:")[0]
        raise DatasetFormatError(f"the image{where} does not decode ({st.st_size} bytes: {reason}); fix or remove it "
                                 "and build again", path=p) from None
    _CHECKED[key] = True
    return p


@dataclasses.dataclass
class Face:
    """One face, already in lmkzoo's pixel convention.

    Attributes:
        key: unique, deterministic example key (relative paths and indices, never an absolute path).
        image: image file path, or a uint8 ``(H, W, 3)`` array (images stored inside .mat files, video frames).
        filename: the image's name relative to the dataset root (or a synthetic one for in-file images).
        face_index: index of this face within its image.
        landmarks: ``(K, 2)`` float32; visible: ``(K,)`` bool; bbox: ``(4,)`` (x0, y0, x1, y1).
        extras: dataset-specific features (must match the builder's ``_extra_features``).
        source: annotation file (and line) the face came from, for error messages.
    """

    key: str
    image: Any
    filename: str
    landmarks: np.ndarray
    bbox: np.ndarray
    face_index: int = 0
    visible: np.ndarray | None = None
    extras: dict = dataclasses.field(default_factory=dict)
    source: tuple = (None, None)

    def check_image(self):
        if isinstance(self.image, (str, Path)):
            if not Path(self.image).is_file():
                path, line = self.source
                raise DatasetFormatError(f"image {self.filename!r} is missing (looked for {self.image})", path=path,
                                         line=line)
            check_image_file(self.image, source=self.source)
        return self

    def example(self) -> dict:
        k = len(self.landmarks)
        vis = np.ones(k, bool) if self.visible is None else np.asarray(self.visible, bool)
        image = str(self.image) if isinstance(self.image, Path) else self.image
        return {
            "image": image,
            "image/filename": self.filename,
            "face_index": int(self.face_index),
            "landmarks": np.asarray(self.landmarks, np.float32),
            "visible": vis,
            "bbox": np.asarray(self.bbox, np.float32),
            **self.extras,
        }


class LandmarkBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the benchmark builders: the shared feature dict + ``extras``, the scheme in the metadata."""

    SCHEME = "ibug68"
    HOMEPAGE = ""
    IMAGE_ENCODING = None  # None: keep the source file's bytes (paths) / PNG (arrays)

    def _scheme(self) -> str:
        return getattr(self.builder_config, "scheme", None) or self.SCHEME

    def _extra_features(self) -> dict:
        return {}

    def _info(self) -> tfds.core.DatasetInfo:
        k = schemes.get(self._scheme()).num_points
        return self.dataset_info_from_configs(
            features=landmark_features(k, self._extra_features(), encoding_format=self.IMAGE_ENCODING),
            supervised_keys=None,
            homepage=self.HOMEPAGE,
            metadata=tfds.core.MetadataDict(scheme=self._scheme()),
        )

    def _finish(self, faces: list[Face]) -> list[Face]:
        """Checks every record (image present, shapes, unique keys) before anything is written."""
        k = schemes.get(self._scheme()).num_points
        seen = {}
        for f in faces:
            f.check_image()
            f.landmarks = check_points(f.landmarks, k, path=f.source[0], line=f.source[1])
            if f.key in seen:
                raise DatasetFormatError(f"duplicate example key {f.key!r} (also from {seen[f.key]})", path=f.source[0],
                                         line=f.source[1])
            seen[f.key] = f.source[0]
        return faces

    def _generate_examples(self, faces):
        for f in faces:
            yield f.key, f.example()
