"""Runtime forms of published weights (``.tflite`` / ``.onnx``), shipped in the package or built once and cached.

``lmkzoo.load(name)`` runs on LiteRT when a LiteRT form of the model's weights exists, so that predicting
imports neither TensorFlow nor Keras. That form is, in order:

1. a file shipped inside the package (zoo.yaml ``weights.litert: {file, sha256}``, the embedded default model),
   used after its SHA-256 matched zoo.yaml;
2. a file in the cache, ``$LMKZOO_HOME/exports/<model>-<weights sha256[:16]>-<lmkzoo version>-<variant>.<ext>``,
   used after its SHA-256 matched the ``<file>.sha256`` written beside it;
3. otherwise exported now from the Keras model (TensorFlow, once per weights file and lmkzoo version), under an
   inter-process lock, to a temporary name renamed into place, then its ``.sha256``.

A partial, truncated or altered cache file fails the check and is rebuilt, never used; two processes that need the
same export build it once (the second waits on the lock, then finds it).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lmkzoo.errors import InvalidArgumentError

__all__ = ["EXPORT_VARIANT", "packaged_litert", "cache_path", "verified", "cached_export"]

log = logging.getLogger(__name__)

#: what a runtime form holds: the float32 serving graph with a dynamic batch (decoding included)
EXPORT_VARIANT = "fp32-dyn"
_SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}
_PACKAGE = Path(__file__).resolve().parents[1]
_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 already checked in this process


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file (here rather than from lmkzoo.hub, whose network modules cost a start-up 0.1-0.3 s)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path)
    return _VERIFIED[key]


def verified(path: Path, sha256: str) -> bool:
    """Whether ``path`` is a file whose SHA-256 is ``sha256`` (computed once per file state and process)."""
    try:
        return path.is_file() and _sha256(path) == sha256
    except OSError:
        return False


def packaged_litert(spec) -> Path | None:
    """The ``.tflite`` shipped in the package for ``spec``'s weights (zoo.yaml ``weights.litert``), if present and
    intact; None otherwise (a damaged one is reported and then ignored: the cache builds a new one)."""
    entry = getattr(spec.weights, "litert", None) if spec.weights is not None else None
    if not entry:
        return None
    path = _PACKAGE / entry["file"]
    if verified(path, entry["sha256"]):
        return path
    log.warning("the packaged LiteRT model %s is missing or does not match its SHA-256 in zoo.yaml; using the cache "
                "instead (reinstall lmkzoo to restore it)", path)
    return None


def cache_path(spec, runtime: str) -> Path:
    """Where the cached ``runtime`` form of ``spec``'s published weights lives."""
    from lmkzoo import __version__, hub

    if runtime not in _SUFFIX:
        raise InvalidArgumentError(f"cached exports are {sorted(_SUFFIX)}; got runtime={runtime!r}")
    if spec.weights is None:
        raise InvalidArgumentError(f"{spec.name} has no published weights to cache an export of")
    return hub.home() / "exports" / f"{spec.name}-{spec.weights.sha256[:16]}-{__version__}-{EXPORT_VARIANT}{_SUFFIX[runtime]}"


def _recorded(path: Path) -> str | None:
    try:
        return path.with_name(path.name + ".sha256").read_text().split()[0]
    except (OSError, IndexError):
        return None


def _valid(path: Path) -> bool:
    sha = _recorded(path)
    return sha is not None and verified(path, sha)


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_export(spec, runtime: str, build: Callable[[Path], Path], *, timeout: float = 3600.0) -> Path:
    """The cached ``runtime`` form of ``spec``'s published weights; ``build(path)`` writes it when the cache has
    no intact copy (see the module docstring for the checks and the lock)."""
    from lmkzoo.hub.cache import _FileLock

    path = cache_path(spec, runtime)
    if _valid(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _FileLock(path.with_name(path.name + ".lock"), time.monotonic() + timeout):
        if _valid(path):  # another process built it while this one waited for the lock
            return path
        if path.exists():
            log.warning("rebuilding the cached export %s: it does not match its recorded SHA-256", path)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        try:
            build(tmp)
            sha = sha256_file(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        _write_text_atomic(path.with_name(path.name + ".sha256"), f"{sha}  {path.name}\n")
    return path
