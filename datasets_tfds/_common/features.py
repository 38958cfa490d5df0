"""The feature dicts lmkzoo builders write (one example per face)."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

__all__ = ["landmark_features", "face_image_features", "flag_features", "COORDINATES_DOC"]

COORDINATES_DOC = (
    "landmarks: (K, 2) float32 (x, y) in pixels of the stored image, lmkzoo's convention: (0, 0) is the top-left "
    "corner of the top-left pixel, whose centre is (0.5, 0.5). bbox: (4,) float32 (x0, y0, x1, y1), x first, same "
    "convention (NOT TFDS's normalised y-first BBoxFeature). visible: (K,) bool, True where the point has an "
    "annotated position (losses and metrics skip the others); a dataset's own occlusion flags are separate "
    "features (COFW's and AFLW's `occluded`)."
)


def landmark_features(num_points: int, extra: dict | None = None, *, encoding_format=None) -> tfds.features.FeaturesDict:
    """``image``, ``image/filename``, ``landmarks`` (K, 2), ``visible`` (K,), ``bbox`` (4,), ``face_index`` + ``extra``."""
    feats = {
        "image": tfds.features.Image(shape=(None, None, 3), encoding_format=encoding_format),
        "image/filename": tfds.features.Text(),
        "face_index": np.int32,
        "landmarks": tfds.features.Tensor(shape=(num_points, 2), dtype=np.float32),
        "visible": tfds.features.Tensor(shape=(num_points,), dtype=np.bool_),
        "bbox": tfds.features.Tensor(shape=(4,), dtype=np.float32),
    }
    feats.update(extra or {})
    return tfds.features.FeaturesDict(feats)


def face_image_features(*, encoding_format=None) -> tfds.features.FeaturesDict:
    """Unlabelled faces: ``image``, ``image/filename`` and ``bbox`` (4,) (the whole image unless a box file says
    otherwise)."""
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3), encoding_format=encoding_format),
        "image/filename": tfds.features.Text(),
        "bbox": tfds.features.Tensor(shape=(4,), dtype=np.float32),
    })


def flag_features(names) -> tfds.features.FeaturesDict:
    """A dict of named boolean scalars (WFLW's six attributes)."""
    return tfds.features.FeaturesDict({n: np.bool_ for n in names})
