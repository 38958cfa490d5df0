"""Pre-fetching for air-gapped machines (:func:`download`, ``lmkzoo download``): zoo weights into the cache, or into
a folder with a ``SHA256SUMS`` manifest to copy elsewhere."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from lmkzoo.errors import ChecksumMismatchError, InvalidArgumentError, WeightsUnavailableError
from lmkzoo.hub.cache import fetch, sha256_file
from lmkzoo.hub.settings import weights_dir

log = logging.getLogger("lmkzoo.hub")


def download(names: Iterable[str] | None = None, *, all_models: bool = False, dest=None,
             progress: bool = True) -> dict[str, Path]:
    """Pre-fetch the pretrained weights of zoo models (for air-gapped machines).

    Args:
        names: ``arch[.tag]`` names (each must have published weights).
        all_models: every zoo entry with downloadable weights.
        dest: a folder to fill instead of the cache: files land in ``dest/weights/`` with a
            ``SHA256SUMS`` manifest, so ``dest`` can be copied elsewhere and used as ``LMKZOO_HOME`` (or
            ``dest/weights`` as ``LMKZOO_WEIGHTS_MIRROR``). Files already in the local cache are copied, not
            downloaded again.
    Returns:
        ``{arch.tag: path}``; entries whose weights ship inside the package are skipped (nothing to fetch).
    """
    from lmkzoo.registry import get_spec, list_models

    if all_models:
        if names:
            raise InvalidArgumentError(f"give model names or all_models=True, not both; got {list(names)}")
        names = [n for n in list_models(pretrained=True) if get_spec(n).weights.url]
        if not names:
            raise WeightsUnavailableError("no zoo entry has downloadable weights (lmkzoo list --pretrained)")
    names = list(names or ())
    if not names:
        raise InvalidArgumentError("name at least one zoo model, or use all_models=True (--all)")
    specs = [get_spec(n) for n in names]
    missing = [s.name for s in specs if s.weights is None]
    if missing:
        have = list_models(pretrained=True)
        raise WeightsUnavailableError(
            f"no published weights for {missing}; models with weights: {have if have else 'none yet'}"
        )
    folder = Path(dest).expanduser() / "weights" if dest is not None else None
    out: dict[str, Path] = {}
    failed: dict[str, Exception] = {}
    for spec in specs:
        w = spec.weights
        if not w.url:  # shipped inside the package
            log.info("%s: weights ship inside lmkzoo (%s); nothing to download", spec.name, w.file)
            continue
        try:
            if folder is not None:
                local = weights_dir() / w.filename
                if local.is_file() and sha256_file(local) == w.sha256:
                    out[spec.name] = _copy_verified(local, folder / w.filename, w.sha256)
                    continue
            out[spec.name] = fetch(w.url, w.sha256, mirrors=w.mirrors, cache_dir=folder, progress=progress,
                                   filename=w.filename)
        except (WeightsUnavailableError, ChecksumMismatchError) as e:
            if len(specs) == 1:
                raise
            failed[spec.name] = e  # go on with the others, report at the end
    if folder is not None and out:
        _write_manifest(folder, {p.name: get_spec(n).weights.sha256 for n, p in out.items()})
    if failed:
        raise WeightsUnavailableError(
            f"{len(failed)} of {len(specs)} downloads failed ({len(out)} done): "
            + "; ".join(f"{n}: {e}" for n, e in failed.items())
        )
    return out


def _copy_verified(src: Path, dst: Path, sha256: str) -> Path:
    if dst.is_file() and sha256_file(dst) == sha256:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".tmp-{os.getpid()}-{dst.name}")
    try:
        shutil.copyfile(src, tmp)
        actual = sha256_file(tmp)
        if actual != sha256:
            raise ChecksumMismatchError(src, sha256, actual)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _write_manifest(folder: Path, entries: Mapping[str, str]):
    """Merge ``{filename: sha256}`` into ``folder/SHA256SUMS`` (``sha256sum -c`` format), atomically."""
    path = folder / "SHA256SUMS"
    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                known[parts[1].lstrip("*")] = parts[0]
    known.update(entries)
    tmp = path.with_name(f".tmp-{os.getpid()}-SHA256SUMS")
    tmp.write_text("".join(f"{sha}  {name}\n" for name, sha in sorted(known.items())))
    os.replace(tmp, path)
