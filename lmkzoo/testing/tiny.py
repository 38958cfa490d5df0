"""Tiny model specs and datasets for fast tests: a zoo spec shrunk to a small input, and shared-data slices."""

from __future__ import annotations

import dataclasses

__all__ = ["tiny_spec", "shared_tfds"]


def tiny_spec(name: str, size: int = 64, **builder):
    """The zoo spec ``name`` with a ``size``x``size`` input and extra ``builder`` overrides merged in."""
    from lmkzoo.registry import get_spec

    spec = get_spec(name)
    return dataclasses.replace(spec, input={**spec.input, "size": [size, size]}, builder={**spec.builder, **builder})


def shared_tfds(config: str, manual_dir, data_dir):
    """Build (once) and return the ``landmark_folder/<config>`` builder over a shared-data folder."""
    import tensorflow_datasets as tfds

    import datasets_tfds  # noqa: F401

    b = tfds.builder(f"landmark_folder/{config}", data_dir=str(data_dir))
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return b
