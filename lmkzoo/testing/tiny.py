"""Tiny model specs and datasets for fast tests: a zoo spec shrunk to a small input, and shared-data slices."""

from __future__ import annotations

import dataclasses

__all__ = ["tiny_spec", "tiny_zoo_spec", "TINY_BUILDER", "shared_tfds"]

#: per family: builder overrides that shrink any zoo entry to a few thousand parameters (tests only)
TINY_BUILDER = {
    "pipnet": {"backbone_args": {"width_multiplier": 0.0625}, "extra_channels": 8},
    "heatmap": {"backbone_args": {"width_multiplier": 0.25, "last_conv_channels": 16}, "filters": 8},
    "lotr": {"backbone_args": {"width_multiplier": 0.25, "last_conv_channels": 16}, "reduce_channels": 8,
             "upsample_filters": [8, 8], "dim": 8, "num_heads": 2, "ffn_dim": 8, "head_units": [8, 8]},
    "laplacekl": {"width": 0.0625, "filters": 16},
    "uglli": {"num_stacks": 2, "channels": 8, "growth_rate": 4, "neck_size": 2, "num_blocks": 2},
}


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


def tiny_zoo_spec(name: str, size: int = 64):
    """Zoo entry ``name`` shrunk by :data:`TINY_BUILDER` (the keys its family does not take are left out)."""
    from lmkzoo.families import get_family
    from lmkzoo.registry import get_spec

    spec = get_spec(name)
    family = get_family(spec.family)
    tiny = {k: v for k, v in TINY_BUILDER.get(spec.family, {}).items() if k in family.builder_keys}
    if "backbone_args" in tiny and str(spec.builder.get("backbone", "")).startswith("resnet"):
        tiny["backbone_args"] = {"width_multiplier": 0.0625}
    return tiny_spec(name, size, **tiny)
