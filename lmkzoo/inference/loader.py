"""``lmkzoo.load``: a zoo name (or a model file) → a :class:`~lmkzoo.inference.landmarker.Landmarker`."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from lmkzoo.errors import (
    CheckpointMismatchError,
    ChecksumMismatchError,
    InvalidArgumentError,
    LmkzooError,
    WeightsUnavailableError,
)
from lmkzoo.inference import landmarker as _landmarker
from lmkzoo.inference.landmarker import Landmarker
from lmkzoo.registry import ModelSpec, default_model_name, get_spec

__all__ = ["load", "load_exported", "build_network", "sha256_file", "packaged_weights_path", "spec_from_network"]

_PACKAGE = Path(__file__).resolve().parents[1]


def sha256_file(path) -> str:
    """SHA-256 of a file (:func:`lmkzoo.hub.sha256_file`; the hub, and its network modules, load on first use)."""
    from lmkzoo.hub import sha256_file as sha

    return sha(path)


def build_network(spec: ModelSpec, **overrides):
    """A randomly initialised network for ``spec`` (:func:`lmkzoo.families.base.build_network`: the family's builder
    with the zoo arguments and ``overrides``, recorded in ``network.zoo_spec``)."""
    from lmkzoo.families.base import build_network as build

    return build(spec, **overrides)


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
    d = getattr(network, "zoo_spec", None)
    if not d:
        if fallback is None:
            raise InvalidArgumentError("this .keras file was not written by lmkzoo (it carries no zoo spec); load it by zoo name")
        return fallback
    return ModelSpec.from_dict(d)


def _load_keras_file(path: Path):
    import keras

    from lmkzoo.families.base import register_all

    register_all()  # imports every family, which registers the classes a .keras file may name

    if not zipfile.is_zipfile(path):
        raise InvalidArgumentError(f"{path} is not a .keras model file: it is not a zip archive (an unfinished copy or "
                                   "download, or another kind of file)")
    try:
        # compile=False: inference needs no loss or optimizer (and a training run's loss may not be importable)
        return keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as e:
        # e.g. a Lambda layer (arbitrary code, refused by safe mode), a damaged member, a class lmkzoo does not know
        raise InvalidArgumentError(f"cannot load {path} (Keras safe mode): {e}") from None


def load(name: str | os.PathLike | None = None, *, weights="pretrained", runtime: str = "auto",
         sha256: str | None = None, builder: dict | None = None, **kwargs):
    """Load a landmark model.

    Args:
        name: ``arch[.tag]`` from zoo.yaml; ``None`` for the embedded default model (offline); or the path of
            a ``.keras`` file written by lmkzoo, or of a ``.tflite`` / ``.onnx`` file exported by lmkzoo.
        weights: ``"pretrained"`` (the zoo file: verified download into the cache, see :func:`lmkzoo.hub.fetch`,
            or the packaged file), ``None`` (random initialisation), a local ``.weights.h5`` / ``.keras`` path
            (a ``.keras`` file loads in Keras safe mode), or an ``http(s)://`` / ``file://`` URL. A URL needs a
            SHA-256, as ``sha256=`` or a ``#sha256=<hex>`` URL fragment: lmkzoo never loads a download it
            cannot verify (download it yourself and pass the path to skip verification).
        runtime: ``"auto"`` (the default): LiteRT (XNNPACK) for published weights, from the LiteRT file shipped in
            the package (the embedded default model) or exported once and cached (``$LMKZOO_HOME/exports``, keyed
            by the weights' SHA-256; see :mod:`lmkzoo.export.cache`), so that predicting imports neither TensorFlow
            nor Keras; Keras for random, local or URL weights, ``builder=`` overrides and ``.keras`` files.
            ``"keras"``, ``"tflite"`` or ``"onnx"`` (ONNX Runtime) choose one: the same Landmarker API and results
            (within float32 tolerance) on each. A ``.tflite`` / ``.onnx`` path loads that file (its metadata
            carries the model's spec). ``num_threads=`` sets the CPU threads of LiteRT and ONNX Runtime. On every
            runtime ``Landmarker.network`` is the Keras network (built on first access where it runs elsewhere).
        sha256: the expected SHA-256 of a ``weights`` URL or local path (a local file is checked when given).
        builder: overrides of the zoo entry's ``builder`` arguments, e.g. ``{"num_stacks": 2}`` for ``uglli_hg``,
            passed to the family's builder (unknown keys raise :class:`~lmkzoo.errors.InvalidArgumentError`). The
            Landmarker keeps the zoo's spec; the network records the merged arguments in
            ``network.zoo_spec["builder"]`` (so a saved ``.keras`` file carries them). Applies to zoo names with
            ``weights=None`` or a ``.weights.h5`` file (which must fit the changed architecture); not to ``.keras``
            / ``.tflite`` / ``.onnx`` files, which carry their own architecture.
    Returns:
        a :class:`~lmkzoo.inference.landmarker.Landmarker`.
    """
    from lmkzoo.inference.landmarker import Landmarker
    from lmkzoo.runtimes import RUNTIMES

    if runtime not in RUNTIMES:
        raise InvalidArgumentError(f"runtime must be one of {list(RUNTIMES)}; got {runtime!r}")
    if builder is not None and not isinstance(builder, dict):
        raise InvalidArgumentError(f"builder must be a dict of builder arguments or None; got {builder!r}")
    builder = dict(builder or {})
    model_file = isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith((".keras", ".tflite", ".onnx")))
    if builder and model_file:
        raise InvalidArgumentError(f"builder= changes a zoo model's architecture; {name} is a model file with its own")
    if isinstance(name, (str, os.PathLike)) and Path(os.fspath(name)).suffix in (".tflite", ".onnx"):
        suffix = Path(os.fspath(name)).suffix
        if runtime not in ("auto", "keras", suffix[1:]):
            raise InvalidArgumentError(f"{name} is a {suffix} file; it runs on runtime={suffix[1:]!r}, not {runtime!r}")
        if weights != "pretrained" or sha256 is not None:
            raise InvalidArgumentError(f"{name} is an exported model with its weights inside; do not pass weights= or sha256=")
        return load_exported(name, **kwargs)
    if name is None:
        name = default_model_name()
        if name is None:
            raise WeightsUnavailableError("this lmkzoo build has no embedded default model; pass a zoo name")
    if runtime != "keras" and not model_file and weights == "pretrained" and sha256 is None and not builder:
        spec = get_spec(name)
        if spec.weights is not None:
            return _published_on_runtime(spec, "tflite" if runtime == "auto" else runtime, strict=runtime != "auto",
                                         **kwargs)
    num_threads = kwargs.pop("num_threads", None)
    if runtime in ("tflite", "onnx"):
        keras_lm = load(name, weights=weights, runtime="keras", sha256=sha256, builder=builder or None, **kwargs)
        return _exported_landmarker(keras_lm, runtime, num_threads=num_threads, **kwargs)
    path = Path(os.fspath(name))
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith(".keras")):
        if not path.exists():
            raise InvalidArgumentError(f"model file not found: {path}")
        network = _load_keras_file(path)
        return Landmarker(spec_from_network(network), network, **kwargs)
    spec = get_spec(name)
    if sha256 is not None and (weights is None or weights == "pretrained"):
        raise InvalidArgumentError(
            f"sha256= checks a weights URL or path; with weights={weights!r} it has nothing to check "
            "(zoo weights are verified against zoo.yaml)"
        )
    if weights is None:
        return Landmarker(spec, build_network(spec, **builder), **kwargs)
    if weights == "pretrained":
        file = _pretrained_file(spec)
    elif isinstance(weights, str) and weights.startswith(("http://", "https://", "file://")):
        from lmkzoo import hub

        file = hub.fetch(weights, sha256)
    elif isinstance(weights, (str, os.PathLike)):
        file = Path(os.fspath(weights)).expanduser()
        if not file.is_file():
            raise WeightsUnavailableError(f"weights file not found: {file}", cache_path=file)
        if sha256 is not None:
            from lmkzoo import hub

            expected = hub.check_sha256(sha256, "sha256")
            actual = sha256_file(file)
            if actual != expected:
                raise ChecksumMismatchError(file, expected, actual)
    else:
        raise InvalidArgumentError(f"weights must be 'pretrained', None, a path or a URL; got {weights!r}")
    file = Path(file)
    if not file.name.endswith((".weights.h5", ".keras")):
        raise InvalidArgumentError(
            f"weights file {file} must be a Keras '.weights.h5' or '.keras' file; official checkpoints of other "
            "frameworks convert with `lmkzoo convert`"
        )
    if file.name.endswith(".keras"):
        if builder:
            raise InvalidArgumentError(f"builder= does not apply to {file}: a .keras file carries its own architecture")
        network = _load_keras_file(file)
        saved = spec_from_network(network, fallback=spec)
        if network.num_points != _num_points(spec) or saved.family != spec.family:
            raise CheckpointMismatchError(
                f"{file} holds {saved.name} ({saved.family}, {network.num_points} points); it cannot be the weights "
                f"of {spec.name} ({spec.family}, {_num_points(spec)} points). Load it by itself: "
                f"lmkzoo.load({str(file)!r})")
        network.zoo_spec = spec.to_dict()
        return Landmarker(spec, network, **kwargs)
    network = build_network(spec, **builder)
    try:
        import h5py

        with h5py.File(file, "r"):
            pass
    except OSError as e:
        raise InvalidArgumentError(f"{file} is not a Keras .weights.h5 file: it is not readable HDF5 ({e}; an "
                                   "unfinished copy or download, or another kind of file)") from None
    try:
        network.load_weights(str(file))
    except (ValueError, KeyError, OSError) as e:
        raise CheckpointMismatchError(f"{file} does not fit {spec.name}: {e}") from None
    return Landmarker(spec, network, **kwargs)


def _published_on_runtime(spec: ModelSpec, runtime: str, *, strict: bool, num_threads: int | None = None, **kwargs):
    """A Landmarker running ``spec``'s published weights on ``runtime`` (``tflite`` / ``onnx``) from the packaged
    or cached export (built now if neither exists, :mod:`lmkzoo.export.cache`); its ``network`` is built on first
    access. ``strict=False`` (``runtime="auto"``) falls back to the Keras runtime, with a warning, when the export
    cannot be built."""
    from lmkzoo.export import cache
    from lmkzoo.runtimes import ONNXRunner, TFLiteRunner

    keras_lm = None

    def network():
        return (keras_lm or load(spec.name, runtime="keras")).network

    path = cache.packaged_litert(spec) if runtime == "tflite" else None
    if path is None:
        def build(target):
            nonlocal keras_lm
            keras_lm = keras_lm or load(spec.name, runtime="keras", **kwargs)
            return keras_lm.export(target, format=runtime, batch_size=None)

        try:
            path = cache.cached_export(spec, runtime, build)
        except (ImportError, RuntimeError, ValueError, OSError) as e:
            if strict or isinstance(e, LmkzooError):
                raise
            import warnings

            warnings.warn(f"{spec.name}: no LiteRT form could be built ({type(e).__name__}: {e}); running on Keras",
                          RuntimeWarning, stacklevel=3)
            return keras_lm or load(spec.name, runtime="keras", **kwargs)
    runner = (TFLiteRunner if runtime == "tflite" else ONNXRunner)(path, num_threads=num_threads)
    return Landmarker(spec, None, runner=runner, network_factory=network, **kwargs)


def _exported_landmarker(keras_lm, runtime: str, *, num_threads=None, **kwargs):
    """``keras_lm`` (random, local or URL weights) exported to ``runtime`` (``tflite`` / ``onnx``) in a temporary
    folder and loaded on it, its Keras network kept as ``.network``."""
    import tempfile


    path = Path(tempfile.mkdtemp(prefix="lmkzoo-export-")) / f"{keras_lm.spec.name}.{runtime}"
    keras_lm.export(path, format=runtime, batch_size=None)
    lm = load_exported(path, num_threads=num_threads, **kwargs)
    lm.network = keras_lm.network
    return lm


def _num_points(spec: ModelSpec) -> int:
    from lmkzoo import schemes

    return schemes.get(spec.scheme).num_points


def load_exported(path, *, num_threads: int | None = None, **kwargs):
    """A :class:`~lmkzoo.inference.landmarker.Landmarker` over an exported ``.tflite`` or ``.onnx`` file (its spec
    comes from the file's metadata)."""
    from lmkzoo.export.metadata import read_metadata, spec_from_metadata
    from lmkzoo.runtimes import ONNXRunner, TFLiteRunner

    p = Path(os.fspath(path))
    if not p.is_file():
        raise InvalidArgumentError(f"exported model not found: {p}")
    spec = spec_from_metadata(read_metadata(p))
    runner = TFLiteRunner(p, num_threads=num_threads) if p.suffix == ".tflite" else ONNXRunner(p, num_threads=num_threads)
    return Landmarker(spec, None, runner=runner, **kwargs)


# the embedded default model supplies five points to aligned families given only boxes (see Landmarker)
_landmarker.five_point_helper_factory = load
