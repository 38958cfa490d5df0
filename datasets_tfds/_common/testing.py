"""Test helpers for the builders: build from a dummy folder, read examples, check points sit on their marks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["build", "examples", "luma", "assert_points_on_marks", "dummy_dir"]


def dummy_dir(name: str, folder: str = "dummy_data") -> Path:
    return Path(__file__).resolve().parents[1] / name / folder


def build(name: str, data_dir, *, config=None, manual_dir=None):
    """``tfds.builder(name)`` prepared from ``manual_dir`` (default: the builder's ``dummy_data/``)."""
    import tensorflow_datasets as tfds

    import datasets_tfds  # noqa: F401

    full = name if config is None or not isinstance(config, str) else f"{name}/{config}"
    kw = {"config": config} if config is not None and not isinstance(config, str) else {}
    b = tfds.builder(full, data_dir=str(data_dir), **kw)
    manual = manual_dir or dummy_dir(name)
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    return b


def examples(builder, split) -> list[dict]:
    import tensorflow_datasets as tfds

    return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


def luma(image) -> np.ndarray:
    return np.asarray(image, np.float64) @ np.array([0.299, 0.587, 0.114])


def assert_points_on_marks(image, points, visible=None, *, min_luma: float = 180.0):
    """Every (visible) point is a pixel centre (``i + 0.5``) whose pixel is a white mark centre of the synthetic
    image (:mod:`datasets_tfds._common.synthetic`); a half-pixel convention slip breaks the first check, a
    one-pixel slip the second (the ring around each centre is dark in luma)."""
    p = np.asarray(points, np.float64)
    keep = np.ones(len(p), bool) if visible is None else np.asarray(visible, bool)
    frac = p[keep] - np.floor(p[keep])
    assert np.allclose(frac, 0.5, atol=1e-4), f"points are not at pixel centres: {p[keep][~np.isclose(frac, 0.5).all(1)][:3]}"
    y = luma(image)
    ij = np.floor(p[keep]).astype(int)
    vals = y[ij[:, 1], ij[:, 0]]
    bad = np.flatnonzero(vals < min_luma)
    assert not len(bad), f"{len(bad)} points not on a mark, e.g. {p[keep][bad[:3]].tolist()} (luma {vals[bad[:3]]})"
