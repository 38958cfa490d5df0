"""The Family protocol and registry: how a zoo.yaml ``family`` becomes a codec, a network, a loss, a data preset,
the overrides a training run fixes from its data, and the trainers it supports.

Each family is a small class registered under its zoo name; ``build_network(spec)`` reads the spec's
``builder`` arguments (validated here, with errors naming the key) and returns a
:class:`~lmkzoo.models.network.LandmarkNetwork` carrying its codec. Families register lazily: the registry
knows the module of each family and imports it on first use. Code above this layer asks the family (never
``spec.family == "pipnet"`` nor ``hasattr``): :meth:`Family.fit_overrides`, :attr:`Family.trainers`,
:meth:`Family.adversarial_args`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from lmkzoo.errors import InvalidArgumentError

__all__ = ["Family", "register_family", "get_family", "family_names", "check_builder_args", "register_all", "merged_builder",
           "spec_dict", "build_network", "TRAINERS"]

#: the trainers of lmkzoo.training (supervised fit, self-training with curriculum, adversarial)
TRAINERS = ("supervised", "self_training", "adversarial")

_FAMILY_MODULES = {
    "pipnet": "lmkzoo.families.pipnet",
    "laplacekl": "lmkzoo.families.laplacekl",
    "uglli": "lmkzoo.families.uglli",
    "heatmap": "lmkzoo.families.heatmap",
    "lotr": "lmkzoo.families.lotr",
}
_FAMILIES: dict[str, Family] = {}


class Family:
    """Base class of a family. Subclasses set ``name`` and ``builder_keys`` and implement the builders."""

    name: str = ""
    #: builder keys the family accepts (zoo.yaml ``builder``), with their defaults
    builder_keys: Mapping[str, Any] = {}
    #: name of the tf.data augmentation preset of the family's recipe
    augment_preset: str = "none"
    #: the trainers (:data:`TRAINERS`) that can train this family
    trainers: tuple[str, ...] = ("supervised",)

    def builder_args(self, spec, **overrides) -> dict:
        return check_builder_args(self.name, {**dict(spec.builder), **overrides}, self.builder_keys)

    def build_network(self, spec, **overrides):
        """The network for ``spec`` (random initialisation)."""
        raise NotImplementedError

    def build_codec(self, spec, **overrides):
        """The codec ``build_network`` would give the network (families override it to skip the network)."""
        return self.build_network(spec, **overrides).codec

    def default_loss(self, spec, network):
        """The loss of the family's recipe."""
        raise NotImplementedError

    def fit_overrides(self, spec, overrides: Mapping, *, train_source=None, init_builder: Mapping | None = None) -> dict:
        """Builder arguments a training run fixes before it builds its network: ``overrides`` (the caller's) plus
        what the family takes from the weights it starts from (``init_builder``) or from its training data
        (``train_source``), e.g. PIPNet's mean face. The base family fixes nothing."""
        return dict(overrides)

    def adversarial_args(self, spec) -> dict | None:
        """The recipe's adversarial settings, or ``None`` (the family trains without a discriminator)."""
        return None

    def trainer_for(self, spec, unlabeled=None) -> str:
        """Which trainer (:data:`TRAINERS`) runs ``spec``'s recipe, given unlabeled data or not."""
        return "supervised"


def merged_builder(spec, overrides: Mapping | None = None, *, drop=()) -> dict:
    """The one merge of a spec's ``builder`` and a caller's overrides (the overrides win; ``drop``: keys left out,
    e.g. training-only ones)."""
    return {k: v for k, v in {**dict(spec.builder), **dict(overrides or {})}.items() if k not in drop}


def spec_dict(spec, overrides: Mapping | None = None, *, drop=()) -> dict:
    """``spec`` as the dict a network carries (``network.zoo_spec``, saved in ``.keras`` files), with the builder
    overrides it was built with (:func:`merged_builder`)."""
    return {**spec.to_dict(), "builder": merged_builder(spec, overrides, drop=drop)}


def build_network(spec, **overrides):
    """A randomly initialised network for ``spec`` (its family's builder with the zoo arguments and ``overrides``),
    carrying ``spec`` with those overrides as ``network.zoo_spec``."""
    network = get_family(spec.family).build_network(spec, **overrides)
    network.zoo_spec = spec_dict(spec, overrides)
    return network


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
