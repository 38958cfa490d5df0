"""Model families: how a zoo.yaml ``family`` becomes a codec, a network, a loss, a data preset and a trainer.

:mod:`~lmkzoo.families.base` holds the :class:`~lmkzoo.families.base.Family` protocol and the registry; each family
has one module (``pipnet``, ``heatmap``, ``lotr``, ``laplacekl``, ``uglli``), imported on first use.
"""

from lmkzoo.families.base import (
    TRAINERS,
    Family,
    build_network,
    family_names,
    get_family,
    merged_builder,
    register_all,
    register_family,
    spec_dict,
)

__all__ = ["TRAINERS", "Family", "build_network", "family_names", "get_family", "merged_builder", "register_all", "register_family",
           "spec_dict"]
