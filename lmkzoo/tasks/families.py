"""Family registry: how a zoo.yaml ``family`` becomes a network, a codec, a loss and a data preset.

Each family is a small class registered under its zoo name; ``build_network(spec)`` reads the spec's
``builder`` arguments (validated here, with errors naming the key) and returns a
:class:`~lmkzoo.models.network.LandmarkNetwork` carrying its codec. Families register lazily: the registry
knows the module of each family and imports it on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from lmkzoo.errors import InvalidArgumentError

__all__ = ["Family", "register_family", "get_family", "family_names", "check_builder_args", "register_all"]

_FAMILY_MODULES = {
    "pipnet": "lmkzoo.tasks.pipnet_family",
    "laplacekl": "lmkzoo.tasks.laplacekl_family",
    "uglli": "lmkzoo.tasks.uglli_family",
    "heatmap": "lmkzoo.tasks.heatmap_family",
    "lotr": "lmkzoo.tasks.lotr_family",
}
_FAMILIES: dict[str, Family] = {}


class Family:
    """Base class of a family. Subclasses set ``name`` and ``builder_keys`` and implement the builders."""

    name: str = ""
    #: builder keys the family accepts (zoo.yaml ``builder``), with their defaults
    builder_keys: Mapping[str, Any] = {}
    #: name of the tf.data augmentation preset of the family's recipe
    augment_preset: str = "none"

    def builder_args(self, spec, **overrides) -> dict:
        return check_builder_args(self.name, {**dict(spec.builder), **overrides}, self.builder_keys)

    def build_network(self, spec, **overrides):
        """The network for ``spec`` (random initialisation)."""
        raise NotImplementedError

    def default_loss(self, spec, network):
        """The loss of the family's recipe."""
        raise NotImplementedError


def check_builder_args(family: str, args: Mapping, allowed: Mapping) -> dict:
    unknown = set(args) - set(allowed)
    if unknown:
        raise InvalidArgumentError(f"{family}: unknown builder arguments {sorted(unknown)}; allowed: {sorted(allowed)}")
    return {**allowed, **args}


def register_family(cls):
    """Class decorator: register a :class:`Family` subclass under ``cls.name``."""
    _FAMILIES[cls.name] = cls()
    return cls


def family_names() -> list[str]:
    return sorted(set(_FAMILY_MODULES) | set(_FAMILIES))


def register_all() -> None:
    """Import every family module and its networks (``lmkzoo.models.<family>``), so every Keras class a saved
    ``.keras`` file may name is registered, and every :class:`Family`."""
    import importlib.util

    import lmkzoo.codecs  # noqa: F401  (the codec classes)

    for name in _FAMILY_MODULES:
        get_family(name)
        if importlib.util.find_spec(f"lmkzoo.models.{name}") is not None:
            importlib.import_module(f"lmkzoo.models.{name}")


def get_family(name: str) -> Family:
    if name not in _FAMILIES and name in _FAMILY_MODULES:
        importlib.import_module(_FAMILY_MODULES[name])
    if name not in _FAMILIES:
        raise InvalidArgumentError(f"unknown model family {name!r}; known families: {family_names()}")
    return _FAMILIES[name]
