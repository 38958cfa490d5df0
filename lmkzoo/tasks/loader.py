"""``lmkzoo.load``: a zoo name (or a model file) → a :class:`~lmkzoo.tasks.landmarker.Landmarker`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from lmkzoo.errors import ChecksumMismatchError, InvalidArgumentError, WeightsUnavailableError
from lmkzoo.registry import ModelSpec, default_model_name, get_spec

__all__ = ["load", "build_network", "sha256_file", "packaged_weights_path", "spec_from_network"]

_PACKAGE = Path(__file__).resolve().parents[1]


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def build_network(spec: ModelSpec, **overrides):
    """A randomly initialised network for ``spec`` (its family's builder with the zoo arguments)."""
    from lmkzoo.tasks.families import get_family

    network = get_family(spec.family).build_network(spec, **overrides)
    network.zoo_spec = spec.to_dict()
    return network


def packaged_weights_path(spec: ModelSpec) -> Path:
    """Path of an embedded weights file (zoo ``weights.file``, relative to the lmkzoo package)."""
    return _PACKAGE / spec.weights.file


def _verified(path: Path, sha256: str, *, what: str) -> Path:
    if not path.exists():
        raise WeightsUnavailableError(f"{what}: packaged weights {path} are missing; reinstall lmkzoo", cache_path=path)
    actual = sha256_file(path)
    if actual != sha256:
        raise ChecksumMismatchError(path, sha256, actual)
    return path


def _pretrained_file(spec: ModelSpec) -> Path:
    w = spec.weights
    if w is None:
        raise WeightsUnavailableError(
            f"{spec.name} has no published weights (zoo.yaml lists none). Use lmkzoo.load({spec.name!r}, weights=None) "
            f"for a randomly initialised model, weights='path/to/file.weights.h5' for your own, or one of "
            f"lmkzoo.list_models(pretrained=True)"
        )
    if w.file:
        return _verified(packaged_weights_path(spec), w.sha256, what=spec.name)
    from lmkzoo import hub

    return hub.fetch(w.url, w.sha256, mirrors=w.mirrors, filename=w.filename)


def spec_from_network(network, fallback: ModelSpec | None = None) -> ModelSpec:
    """The ModelSpec stored inside a network saved by lmkzoo (``.keras`` files carry it)."""
    from lmkzoo.registry import WeightsSpec

    d = getattr(network, "zoo_spec", None)
    if not d:
        if fallback is None:
            raise InvalidArgumentError("this .keras file was not written by lmkzoo (it carries no zoo spec); load it by zoo name")
        return fallback
    d = dict(d)
    w = d.pop("weights", None)
    return ModelSpec(**d, weights=WeightsSpec(**{**w, "mirrors": tuple(w.get("mirrors") or ())}) if w else None)


def _load_keras_file(path: Path):
    import keras

    import lmkzoo.codecs  # noqa: F401  (registers the classes a .keras file may name)
    import lmkzoo.models.heatmap  # noqa: F401
    import lmkzoo.models.pipnet  # noqa: F401

    return keras.saving.load_model(str(path), safe_mode=True)


def load(name: str | os.PathLike | None = None, *, weights="pretrained", runtime: str = "keras", **kwargs):
    """Load a landmark model.

    Args:
        name: ``arch[.tag]`` from zoo.yaml; ``None`` for the embedded default model (offline); or the path of
            a ``.keras`` file written by lmkzoo.
        weights: ``"pretrained"`` (verified download into the cache, or the packaged file), ``None`` (random
            initialisation), a local ``.weights.h5`` / ``.keras`` path, or a URL.
        runtime: ``"keras"`` (other runtimes load exported files).
    Returns:
        a :class:`~lmkzoo.tasks.landmarker.Landmarker`.
    """
    from lmkzoo.tasks.landmarker import Landmarker

    if runtime != "keras":
        raise InvalidArgumentError(f"runtime must be 'keras' for zoo names; got {runtime!r}")
    if name is None:
        name = default_model_name()
        if name is None:
            raise WeightsUnavailableError("this lmkzoo build has no embedded default model; pass a zoo name")
    path = Path(os.fspath(name))
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith(".keras")):
        if not path.exists():
            raise InvalidArgumentError(f"model file not found: {path}")
        network = _load_keras_file(path)
        return Landmarker(spec_from_network(network), network, **kwargs)
    spec = get_spec(name)
    if weights is None:
        return Landmarker(spec, build_network(spec), **kwargs)
    if weights == "pretrained":
        file = _pretrained_file(spec)
    elif isinstance(weights, (str, os.PathLike)) and str(weights).startswith(("http://", "https://")):
        from lmkzoo import hub

        file = hub.fetch(str(weights), kwargs.pop("sha256", None))
    elif isinstance(weights, (str, os.PathLike)):
        file = Path(os.fspath(weights))
        if not file.exists():
            raise WeightsUnavailableError(f"weights file not found: {file}", cache_path=file)
    else:
        raise InvalidArgumentError(f"weights must be 'pretrained', None, a path or a URL; got {weights!r}")
    file = Path(file)
    if file.name.endswith(".keras"):
        network = _load_keras_file(file)
        if network.num_points != _num_points(spec):
            raise InvalidArgumentError(
                f"{file} predicts {network.num_points} points but {spec.name} uses {spec.scheme} ({_num_points(spec)})"
            )
        network.zoo_spec = spec.to_dict()
        return Landmarker(spec, network, **kwargs)
    network = build_network(spec)
    try:
        network.load_weights(str(file))
    except (ValueError, KeyError) as e:
        raise InvalidArgumentError(f"{file} does not fit {spec.name}: {e}") from None
    return Landmarker(spec, network, **kwargs)


def _num_points(spec: ModelSpec) -> int:
    from lmkzoo import schemes

    return schemes.get(spec.scheme).num_points
