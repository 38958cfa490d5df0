"""The cache side of :func:`fetch` (see :mod:`lmkzoo.hub`): hashes and URLs checked, the sources in order, one
process at a time per file (a ``flock`` lock file), every download verified (SHA-256) before one atomic
:func:`os.replace` onto its final name. Moving the bytes is :mod:`lmkzoo.hub.transport`'s."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from lmkzoo.errors import ChecksumMismatchError, InvalidArgumentError, StorageError, WeightsUnavailableError
from lmkzoo.hub import transport
from lmkzoo.hub.settings import _settings, is_offline, weights_dir
from lmkzoo.hub.transport import _is_local

log = logging.getLogger("lmkzoo.hub")

_LOCK_POLL = 0.1
_HEX = re.compile(r"[0-9a-f]{64}")


# ------------------------------------------------------------------------------------------------ hashing
def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(value, where: str) -> str:
    if not isinstance(value, str) or not _HEX.fullmatch(value.strip().lower()):
        raise InvalidArgumentError(f"{where} must be 64 hexadecimal digits (a SHA-256); got {value!r}")
    return value.strip().lower()


def split_sha256_fragment(url: str) -> tuple[str, str | None]:
    """``"https://h/f.weights.h5#sha256=<hex>"`` → ``("https://h/f.weights.h5", "<hex>")``.

    A URL without a ``sha256=`` fragment comes back unchanged with ``None``.
    """
    base, sep, frag = url.partition("#")
    if not sep:
        return url, None
    params = urllib.parse.parse_qs(frag)
    if "sha256" not in params:
        raise InvalidArgumentError(f"the only URL fragment lmkzoo understands is '#sha256=<64 hex digits>'; got {url!r}")
    return base, check_sha256(params["sha256"][0], f"the sha256 fragment of {url!r}")


def _resolve_hash(url, sha256) -> tuple[str, str]:
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError(f"url must be a non-empty string; got {url!r}")
    url, frag_sha = split_sha256_fragment(url)
    if sha256 is None and frag_sha is None:
        raise InvalidArgumentError(
            f"no SHA-256 for {url}: lmkzoo only downloads files it can verify. Pass sha256='<64 hex digits>' "
            f"(lmkzoo.load(name, weights=url, sha256=...)) or append '#sha256=<hex>' to the URL; for a file you "
            f"trust without a hash, download it yourself and pass its local path"
        )
    if sha256 is not None:
        sha256 = check_sha256(sha256, "sha256")
        if frag_sha is not None and frag_sha != sha256:
            raise InvalidArgumentError(f"sha256={sha256} disagrees with the URL fragment sha256={frag_sha} ({url})")
    return url, sha256 or frag_sha


def _url_filename(url: str) -> str:
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    return path.rstrip("/").rsplit("/", 1)[-1]


def _check_filename(filename) -> str:
    if (not isinstance(filename, str) or not filename or filename in (".", "..") or "/" in filename
            or "\\" in filename or "\x00" in filename or filename.endswith((".part", ".lock"))):
        raise InvalidArgumentError(
            f"filename must be a plain file name (no folder, not ending in .part/.lock); got {filename!r}"
        )
    return filename


def _check_url(url: str, what: str) -> str:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise InvalidArgumentError(f"{what} must be an http://, https:// or file:// URL; got {url!r}")
    return url


def _sources(url: str, mirrors: Iterable[str], filename: str) -> list[str]:
    override = os.environ.get("LMKZOO_WEIGHTS_MIRROR", "").strip()
    if override:
        if override.startswith(("http://", "https://", "file://")):
            return [override.rstrip("/") + "/" + urllib.parse.quote(filename)]
        return [str(Path(override).expanduser() / filename)]
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    out = [_check_url(url, "url")]
    for m in mirrors or ():
        m, _ = split_sha256_fragment(_check_url(str(m), "a mirror"))
        if m not in out:
            out.append(m)
    return out


# ---------------------------------------------------------------------------------------------- the lock
class _FileLock:
    """An exclusive inter-process lock on ``path`` (``flock``; ``msvcrt.locking`` on Windows).

    The lock file is removed on release. A waiter checks, after locking, that the file it locked is still
    the one at ``path`` (it may have been unlinked by the previous holder) and retries otherwise, so
    removing it is race-free. The kernel drops the lock if its holder dies: no stale locks.
    """

    def __init__(self, path: Path, deadline: float, *, on_wait=None):
        self.path = path
        self.deadline = deadline
        self.on_wait = on_wait
        self.fd = None

    def __enter__(self):
        waited = False
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise StorageError.from_os_error(e, self.path, "create the lock file",
                                                 "set LMKZOO_HOME to a writable folder") from None
            try:
                while not _try_lock(fd):
                    if not waited:
                        waited = True
                        if self.on_wait:
                            self.on_wait()
                    if time.monotonic() > self.deadline:
                        raise WeightsUnavailableError(
                            f"gave up waiting for another process to finish downloading into {self.path.parent} "
                            f"(lock {self.path}); raise LMKZOO_HUB_MAX_TIME to wait longer",
                            cache_path=self.path,
                        )
                    time.sleep(_LOCK_POLL)
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                self.fd = fd
                return self
            os.close(fd)  # the previous holder removed that file: lock the new one

    def __exit__(self, *exc):
        if os.name != "nt":
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self.fd)  # closing releases the lock
        if os.name == "nt":
            try:
                os.unlink(self.path)
            except OSError:  # another process has it open (and locked): it removes it
                pass
        self.fd = None


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


# ------------------------------------------------------------------------------------------------- fetch
def _download(sources: list[str], target: Path, sha256: str, *, timeout: float, deadline: float, max_time: float,
              retries: int, progress: bool, primary: str) -> Path:
    part = target.with_name(target.name + ".part")
    tried: list[str] = []
    mismatch: ChecksumMismatchError | None = None
    out_of_time = False
    for source in sources:
        if out_of_time:
            break
        attempts = transport.Attempts(part)
        restarted = False
        while True:
            try:
                how = transport.transfer(source, part, attempts, retries=retries, timeout=timeout, deadline=deadline,
                                         progress=progress, desc=target.name)
            except transport.SourceFailed as e:
                tried.append(e.reason)
                out_of_time = e.out_of_time
                break
            except OSError as e:  # network errors are the transport's: this is the disk (full, read-only, ...)
                part.unlink(missing_ok=True)
                raise StorageError.from_os_error(
                    e, part, "write the download", f"the partial file was removed; free space in {part.parent} or "
                    "set LMKZOO_HOME to a writable folder with room for it") from None
            actual = sha256_file(part)
            if actual == sha256:
                try:
                    os.replace(part, target)
                except OSError as e:
                    part.unlink(missing_ok=True)
                    raise StorageError.from_os_error(e, target, "move the verified download to") from None
                _fsync_dir(target.parent)
                log.info("%s: %s (%s), SHA-256 verified", target, how, source)
                return target
            part.unlink(missing_ok=True)
            if how.startswith("resumed") and not restarted:
                # the kept partial file may come from another version of the file: once, start from zero
                restarted = True
                log.warning("%s: resumed file has the wrong SHA-256; downloading it again from the start", source)
                continue
            mismatch = ChecksumMismatchError(target, sha256, actual, url=source)
            log.warning("%s", mismatch)
            tried.append(f"{source}: wrong SHA-256 {actual}")
            break
    if part.exists() and part.stat().st_size == 0:
        part.unlink()
    if mismatch is not None and not out_of_time:
        raise mismatch
    kept = f"; the partial download is kept at {part} and the next call resumes it" if part.exists() else ""
    why = f"gave up after {max_time:g} s (LMKZOO_HUB_MAX_TIME)" if out_of_time else "every source failed"
    raise WeightsUnavailableError(
        f"could not download {target.name} ({why}): " + "; ".join(tried)
        + f"{kept}. To install it by hand, get {primary} (SHA-256 {sha256}) and place it at {target}",
        url=primary,
        cache_path=target,
    )


def _fsync_dir(folder: Path):
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fetch(url: str, sha256: str | None, *, mirrors: Iterable[str] = (), cache_dir=None, progress: bool = True,
          filename: str | None = None) -> Path:
    """Download ``url`` into the cache (once), verify its SHA-256, and return the cached path.

    Args:
        url: ``http(s)://`` or ``file://`` URL of the file. A ``#sha256=<hex>`` fragment may carry the hash.
        sha256: the file's SHA-256 (64 hex digits). Mandatory, here or in the URL fragment: lmkzoo never
            caches a file it cannot verify.
        mirrors: further URLs of the same file, tried in order after ``url``.
        cache_dir: folder of the cached file (default ``weights_dir()``, i.e. ``$LMKZOO_HOME/weights``).
        progress: show a progress bar (and "waiting for another process") on stderr.
        filename: name of the cached file (default: the last part of the URL path).
    Returns:
        the path of the verified file, ``cache_dir / filename``.
    Raises:
        ChecksumMismatchError: a source served a file with another SHA-256 (the partial file is deleted),
            or, offline, the cached file has another SHA-256.
        WeightsUnavailableError: offline and not cached, or every source failed (404s, timeouts, time limit);
            the message lists each source's failure and where to place the file by hand.
        InvalidArgumentError: malformed url, sha256, filename or environment setting.

    See :mod:`lmkzoo.hub` for ``LMKZOO_HOME``, ``LMKZOO_OFFLINE``, ``LMKZOO_WEIGHTS_MIRROR`` and the limits.
    """
    url, sha256 = _resolve_hash(url, sha256)
    _check_url(url, "url")
    filename = _check_filename(filename if filename is not None else _url_filename(url))
    folder = Path(cache_dir).expanduser() if cache_dir is not None else weights_dir()
    target = folder / filename
    timeout, max_time, retries = _settings()
    sources = _sources(url, mirrors, filename)

    # a verified cached file: no lock, no network (a concurrent writer only ever renames verified files here)
    cached_sha = sha256_file(target) if target.is_file() else None
    if cached_sha == sha256:
        return target
    if is_offline():
        sources = [s for s in sources if _is_local(s)]
        if not sources:
            if cached_sha is not None:
                raise ChecksumMismatchError(
                    target, sha256, cached_sha, url=url,
                    hint=f"LMKZOO_OFFLINE=1, so lmkzoo will not download it again: replace it with the file from {url}",
                )
            raise WeightsUnavailableError(
                f"LMKZOO_OFFLINE=1 and {filename} is not in the cache, so lmkzoo will not download it. On a machine "
                f"with network access get {url} (SHA-256 {sha256}), e.g. with `lmkzoo download <model> --dest DIR`, "
                f"and place it at {target} (or point LMKZOO_WEIGHTS_MIRROR at a folder holding {filename})",
                url=url,
                cache_path=target,
            )

    deadline = time.monotonic() + max_time
    hint = "set LMKZOO_HOME to a writable folder (or cache_dir=)"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(13, "Permission denied (read-only)", str(folder))
    except OSError as e:
        raise StorageError.from_os_error(e, folder, "use the cache folder", hint) from None

    def on_wait():
        msg = f"lmkzoo: another process is downloading {filename}; waiting for it (lock {target.name}.lock)"
        if progress:
            print(msg, file=sys.stderr, flush=True)
        log.info(msg)

    with _FileLock(folder / f"{filename}.lock", deadline, on_wait=on_wait):
        if target.is_file():
            actual = sha256_file(target)
            if actual == sha256:
                return target  # the process we waited for has fetched it
            # never keep an unverified file under the final name, even if every source then fails
            log.warning("%s has SHA-256 %s, not %s: deleting it before downloading again", target, actual, sha256)
            target.unlink(missing_ok=True)
        return _download(sources, target, sha256, timeout=timeout, deadline=deadline, max_time=max_time,
                         retries=retries, progress=progress, primary=url)
