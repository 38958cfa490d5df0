"""Weights hub: the one function that downloads anything (:func:`fetch`), pre-fetching for air-gapped
machines (:func:`download`) and publishing a trained model's weights (:func:`publish`).

:func:`fetch` guarantees that the cache never holds an unverified file under its final name:

* the file streams into ``<cache>/<filename>.part`` (same folder as the target), with a progress bar;
* an interrupted transfer resumes with an HTTP ``Range`` request, within the same call (retries) or in a
  later one (the ``.part`` file is kept after a network failure); a server that ignores ``Range`` answers
  ``200`` with the whole file and the transfer restarts cleanly from byte 0;
* the SHA-256 is checked before an atomic :func:`os.replace` onto the final name; on a mismatch the
  partial file is deleted and :class:`~lmkzoo.errors.ChecksumMismatchError` names both hashes;
* the primary URL, then each mirror, are tried in order; transient errors (timeouts, dropped
  connections, HTTP 408/425/429/5xx) are retried with exponential backoff, permanent ones (404, 403, ...)
  move on to the next URL at once, and the whole call is bounded in time;
* a lock file (``<filename>.lock``, held with ``flock``) serialises processes that fetch the same file:
  the second one waits, then finds the verified file and reuses it;
* a cached file whose SHA-256 is right is returned without touching the network; online, a cached file
  whose SHA-256 is wrong is deleted before the download starts (offline it is kept and reported).

Environment:

``LMKZOO_HOME``
    cache root (default ``$XDG_CACHE_HOME/lmkzoo``, else ``~/.cache/lmkzoo``); weights live in ``weights/``.
``LMKZOO_OFFLINE=1``
    never open a socket: a file missing from the cache raises
    :class:`~lmkzoo.errors.WeightsUnavailableError` saying which file (URL, SHA-256) to place where.
``LMKZOO_WEIGHTS_MIRROR``
    base URL that replaces every weights URL: ``<mirror>/<filename>`` is the only source tried. It may be
    ``http(s)://...``, ``file:///...`` or a plain folder (such as ``DIR/weights`` written by
    ``lmkzoo download --dest DIR``); a folder mirror also works with ``LMKZOO_OFFLINE=1``.
``LMKZOO_HUB_TIMEOUT``
    seconds a connection or a single read may stall before the attempt counts as failed (default 30).
``LMKZOO_HUB_MAX_TIME``
    seconds one :func:`fetch` may take in all, retries and waiting for another process included
    (default 3600). A transfer still running at the deadline stops; its ``.part`` file is kept for resume.
``LMKZOO_HUB_RETRIES``
    attempts per URL for transient errors without progress (default 4).

Only the standard library speaks HTTP here (:mod:`urllib.request`), so proxies from the usual
``https_proxy`` / ``no_proxy`` variables apply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import logging
import os
import random
import re
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lmkzoo.errors import ChecksumMismatchError, InvalidArgumentError, WeightsUnavailableError

__all__ = [
    "fetch",
    "download",
    "publish",
    "PublishedWeights",
    "home",
    "weights_dir",
    "is_offline",
    "sha256_file",
    "split_sha256_fragment",
    "check_sha256",
    "DEFAULT_URL_TEMPLATE",
]

log = logging.getLogger("lmkzoo.hub")

#: where ``lmkzoo publish`` says a weights file will live (``{version}``, ``{filename}``, ``{name}``, ``{arch}``,
#: ``{tag}``, ``{sha256}``, ``{sha8}`` are filled in)
DEFAULT_URL_TEMPLATE = "https://github.com/lmkzoo/lmkzoo/releases/download/weights-v{version}/{filename}"

_CHUNK = 1 << 16
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
# backoff between attempts: base * 2**(n-1) seconds (+-25% jitter), capped; tests shrink the base
_BACKOFF_BASE = 0.5
_BACKOFF_MAX = 16.0
_LOCK_POLL = 0.1
_HEX = re.compile(r"[0-9a-f]{64}")


# ------------------------------------------------------------------------------------------------- config
def home() -> Path:
    """The lmkzoo cache root: ``$LMKZOO_HOME``, else ``$XDG_CACHE_HOME/lmkzoo``, else ``~/.cache/lmkzoo``."""
    if os.environ.get("LMKZOO_HOME"):
        return Path(os.environ["LMKZOO_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return (Path(base) / "lmkzoo").expanduser()


def weights_dir() -> Path:
    """Folder of cached weights files: ``home() / "weights"``."""
    return home() / "weights"


def is_offline() -> bool:
    """True when ``LMKZOO_OFFLINE`` is set to 1/true/yes/on (case-insensitive)."""
    return os.environ.get("LMKZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be a number of seconds; got {raw!r}") from None
    if value <= 0:
        raise InvalidArgumentError(f"{name} must be positive; got {raw!r}")
    return value


def _settings() -> tuple[float, float, int]:
    timeout = _env_float("LMKZOO_HUB_TIMEOUT", 30.0)
    max_time = _env_float("LMKZOO_HUB_MAX_TIME", 3600.0)
    retries = int(_env_float("LMKZOO_HUB_RETRIES", 4))
    return timeout, max_time, max(1, retries)


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


def _is_local(source: str) -> bool:
    return not source.startswith(("http://", "https://"))


def _local_path(source: str) -> Path:
    if source.startswith("file://"):
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
    return Path(source).expanduser()


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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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


# ------------------------------------------------------------------------------------------- transfers
class _Transient(Exception):
    """Worth retrying (timeouts, dropped connections, 5xx)."""

    def __init__(self, message: str, *, progressed: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.progressed = progressed
        self.retry_after = retry_after


class _Permanent(Exception):
    """This URL will not work (404, 403, bad scheme): move on to the next one."""


class _Deadline(Exception):
    """The call's time budget ran out during a transfer."""


def _parse_content_range(value: str | None):
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        return None
    start, end, total = m.groups()
    return int(start), int(end), None if total == "*" else int(total)


def _retry_after(headers) -> float | None:
    try:
        return float(headers.get("Retry-After")) if headers and headers.get("Retry-After") else None
    except ValueError:
        return None


def _open(url: str, offset: int, timeout: float):
    from lmkzoo import __version__

    headers = {"User-Agent": f"lmkzoo/{__version__} (+https://github.com/lmkzoo/lmkzoo)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            return None  # nothing after `offset`: the partial file may already be complete
        if e.code in _TRANSIENT_HTTP:
            raise _Transient(f"HTTP {e.code} {e.reason}", retry_after=_retry_after(e.headers)) from None
        raise _Permanent(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, socket.gaierror):
            raise _Permanent(f"cannot resolve the host ({reason})") from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise _Permanent(f"TLS certificate rejected ({reason})") from None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise _Transient(f"connection timed out after {timeout:g} s") from None
        raise _Transient(f"cannot connect ({reason})") from None
    except TimeoutError:
        raise _Transient(f"no response within {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError, OSError) as e:
        raise _Transient(f"connection failed ({type(e).__name__}: {e})") from None


def _progress_bar(enabled: bool, total, initial: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=not enabled, file=sys.stderr, leave=True, dynamic_ncols=True, mininterval=0.2)


def _transfer_http(url: str, part: Path, *, timeout: float, deadline: float, progress: bool, desc: str) -> str:
    """Fill ``part`` from ``url`` (resuming from its current size when the server allows). Returns how."""
    offset = part.stat().st_size if part.exists() else 0
    resp = _open(url, offset, timeout)
    if resp is None:
        return "resumed (nothing left to fetch)"
    with resp:
        status = resp.status
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if status == 206 and offset:
            cr = _parse_content_range(resp.headers.get("Content-Range"))
            if cr is None or cr[0] != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"the server answered Range bytes={offset}- with {resp.headers.get('Content-Range')!r}; restarting")
            total, mode, how = cr[2], "ab", "resumed"
        elif status == 200:
            how = "full"
            if offset:
                log.info("%s: the server ignored the Range request; restarting from byte 0", url)
                how = "restarted"
            offset, total, mode = 0, length, "wb"
        else:
            raise _Permanent(f"unexpected HTTP status {status}")
        received = 0
        read = getattr(resp, "read1", resp.read)  # what has arrived: a stall loses nothing already received
        bar = _progress_bar(progress, total, offset, desc)
        try:
            with open(part, mode) as f:
                while True:
                    if time.monotonic() > deadline:
                        raise _Deadline(f"still downloading at the time limit ({offset + received} bytes so far)")
                    try:
                        chunk = read(_CHUNK)
                    except TimeoutError:
                        raise _Transient(f"read stalled for {timeout:g} s after {offset + received} bytes",
                                         progressed=received > 0) from None
                    except (http.client.HTTPException, ConnectionError, OSError) as e:
                        raise _Transient(f"connection dropped after {offset + received} bytes ({type(e).__name__})",
                                         progressed=received > 0) from None
                    if not chunk:
                        break
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                f.flush()
                os.fsync(f.fileno())
        finally:
            bar.close()
        if length is not None and received < length:
            raise _Transient(f"connection closed after {offset + received} of {offset + length} bytes",
                             progressed=received > 0)
    return how


def _transfer_local(source: str, part: Path) -> str:
    src = _local_path(source)
    if not src.is_file():
        raise _Permanent(f"no such file {src}")
    with open(src, "rb") as fi, open(part, "wb") as fo:
        shutil.copyfileobj(fi, fo, 1 << 20)
        fo.flush()
        os.fsync(fo.fileno())
    return "copied"


def _backoff(n: int, retry_after: float | None) -> float:
    delay = min(_BACKOFF_MAX, _BACKOFF_BASE * 2 ** max(0, n - 1))
    delay *= random.uniform(0.75, 1.25)
    if retry_after is not None:
        delay = max(delay, min(retry_after, _BACKOFF_MAX))
    return delay


def _download(sources: list[str], target: Path, sha256: str, *, timeout: float, deadline: float, max_time: float,
              retries: int, progress: bool, primary: str) -> Path:
    part = target.with_name(target.name + ".part")
    tried: list[str] = []
    mismatch: ChecksumMismatchError | None = None
    out_of_time = False
    for source in sources:
        if out_of_time:
            break
        failures = 0
        restarted = False
        while True:
            if time.monotonic() > deadline:
                out_of_time = True
                tried.append(f"{source}: not tried before the time limit")
                break
            offset = part.stat().st_size if part.exists() else 0
            try:
                if _is_local(source):
                    how = _transfer_local(source, part)
                else:
                    if is_offline():  # belt and braces: fetch() already refused
                        raise _Permanent("LMKZOO_OFFLINE=1")
                    how = _transfer_http(source, part, timeout=timeout, deadline=deadline, progress=progress,
                                         desc=target.name)
            except _Permanent as e:
                tried.append(f"{source}: {e}")
                break
            except _Deadline as e:
                tried.append(f"{source}: {e}")
                out_of_time = True
                break
            except _Transient as e:
                failures = 1 if e.progressed else failures + 1
                log.warning("downloading %s: %s (attempt %d of %d)", source, e, failures, retries)
                if failures >= retries:
                    tried.append(f"{source}: {e} ({failures} attempt{'s' if failures != 1 else ''})")
                    break
                wait = _backoff(failures, e.retry_after)
                if time.monotonic() + wait > deadline:
                    tried.append(f"{source}: {e}")
                    out_of_time = True
                    break
                time.sleep(wait)
                continue
            actual = sha256_file(part)
            if actual == sha256:
                os.replace(part, target)
                _fsync_dir(target.parent)
                log.info("%s: %s (%s), SHA-256 verified", target, how, source)
                return target
            part.unlink(missing_ok=True)
            if how.startswith("resumed") and offset and not restarted:
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


# ------------------------------------------------------------------------------------------------- fetch
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

    See the module docstring for ``LMKZOO_HOME``, ``LMKZOO_OFFLINE``, ``LMKZOO_WEIGHTS_MIRROR`` and the limits.
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
    folder.mkdir(parents=True, exist_ok=True)

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


# ---------------------------------------------------------------------------------------------- download
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


# ----------------------------------------------------------------------------------------------- publish
@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    """What :func:`publish` wrote: the weights file and the zoo.yaml lines that describe it."""

    name: str  # arch.tag
    path: Path
    sha256: str
    size: int
    url: str
    entry: Mapping[str, Any]  # the ``weights:`` mapping
    builder: Mapping[str, Any]  # tag-level ``builder:`` overrides the weights need (may be empty)

    def to_yaml(self) -> str:
        """The zoo.yaml text to merge under ``models.<arch>.tags.<tag>``."""
        import yaml

        arch, tag = self.name.split(".", 1)
        body: dict[str, Any] = {}
        if self.builder:
            body["builder"] = _plain(dict(self.builder))
        body["weights"] = _plain(dict(self.entry))
        text = yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120)
        indented = "".join("        " + line + "\n" for line in text.splitlines())
        return f"# zoo.yaml: merge into models.{arch}.tags.{tag}\n      {tag}:\n{indented}"


def _plain(value):
    """numpy scalars/arrays and tuples → plain YAML-safe Python values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return value


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise InvalidArgumentError(f"{path} is not valid JSON ({e})") from None


def _run_metrics(history: Mapping) -> dict[str, float]:
    out = {}
    for key in ("val_nme", "val_fr", "val_auc"):
        values = history.get(key)
        if values:
            out[key] = round(float(values[-1]), 6)
    return out


def _codec_config(obj) -> dict:
    codec = getattr(obj, "codec", obj)
    cfg = dict(codec.get_config())
    for k in ("name", "trainable", "dtype"):
        cfg.pop(k, None)
    return json.loads(json.dumps(_plain(cfg)))


def publish(source, *, license: str, data_license: str, name: str | None = None, out_dir=None,
            url_template: str = DEFAULT_URL_TEMPLATE, training_data: str | None = None, made_by: str | None = None,
            metrics: Mapping[str, float] | None = None, builder_overrides: Mapping[str, Any] | None = None,
            mirrors: Iterable[str] = ()) -> PublishedWeights:
    """Write the ``.weights.h5`` file of a model trained with lmkzoo and the zoo.yaml entry describing it.

    Args:
        source: a training run folder (``lmkzoo.tasks.train.train`` output: ``final.keras`` or
            ``final.weights.h5``, with ``config.json`` and ``history.json``), a ``.keras`` file written by
            lmkzoo, or a ``.weights.h5`` file (then ``name`` is needed unless a ``config.json`` sits beside it).
        license: licence of the published weights (e.g. ``"Apache-2.0"``, ``"CC-BY-NC-4.0"``).
        data_license: licence of the training data.
        name: the zoo ``arch.tag`` the weights are for (default: from the run's config or the .keras file).
        out_dir: folder for the weights file (default: the run folder, else the source's folder).
        url_template: where the file will be uploaded; ``{version}``, ``{filename}``, ``{name}``, ``{arch}``,
            ``{tag}``, ``{sha256}``, ``{sha8}`` are filled in (``mirrors`` are templates too).
        training_data, made_by, metrics: model card fields; by default taken from the run's ``config.json``
            (data, recipe) and ``history.json`` (last ``val_nme``/``val_fr``/``val_auc``). Metrics are required.
        builder_overrides: zoo ``builder`` arguments the weights were trained with (default: the run's
            ``builder_overrides``; for a ``.keras`` file, a ``meanface`` differing from the zoo default is found
            from its codec). They are printed as the tag's ``builder:`` so ``lmkzoo.load`` rebuilds the same net.
    Returns:
        :class:`PublishedWeights`; ``.to_yaml()`` is the text for zoo.yaml. The file is named
        ``<arch.tag>-<sha256[:8]>.weights.h5`` and is checked to load into the zoo model it names (and, from a
        ``.keras`` source, to give identical outputs).
    """
    import numpy as np

    from lmkzoo import __version__
    from lmkzoo.registry import get_spec, validate_weights_entry
    from lmkzoo.tasks.families import get_family
    from lmkzoo.tasks.loader import _load_keras_file, build_network

    src = Path(source).expanduser()
    if not src.exists():
        raise InvalidArgumentError(f"nothing to publish at {src}: give a training run folder, a .keras or a .weights.h5 file")
    run_dir = src if src.is_dir() else src.parent
    keras_file = weights_file = None
    if src.is_dir():
        if (src / "final.keras").is_file():
            keras_file = src / "final.keras"
        elif (src / "final.weights.h5").is_file():
            weights_file = src / "final.weights.h5"
        else:
            raise InvalidArgumentError(f"{src} holds neither final.keras nor final.weights.h5 (a training run folder has them)")
    elif src.name.endswith(".keras"):
        keras_file = src
    elif src.name.endswith(".weights.h5"):
        weights_file = src
    else:
        raise InvalidArgumentError(f"publish takes a run folder, a .keras or a .weights.h5 file; got {src}")
    config = _read_json(run_dir / "config.json")
    history = _read_json(run_dir / "history.json")

    if name is None:
        name = config.get("model")
    source_net = None
    if name is None and keras_file is not None:
        source_net = _load_keras_file(keras_file)
        name = (source_net.zoo_spec or {}).get("name")
    if name is None:
        raise InvalidArgumentError(f"cannot tell which zoo model {src} is for: pass name='arch.tag'")
    spec = get_spec(name)
    name = spec.name
    if config.get("model") is not None and get_spec(config["model"]).name != name:
        raise InvalidArgumentError(f"{run_dir / 'config.json'} says the run trained {config['model']!r}, not {name!r}")

    # the model card first (cheap): every mistake is reported before any model is built
    arch, tag = name.split(".", 1)

    def make_url(template: str, sha: str, filename: str) -> str:
        try:
            return template.format(version=__version__, filename=filename, name=name, arch=arch, tag=tag,
                                       sha256=sha, sha8=sha[:8])
        except (KeyError, IndexError, ValueError) as e:
            raise InvalidArgumentError(
                f"URL template {template!r} uses an unknown field ({e}); allowed: {{version}} {{filename}} "
                "{name} {arch} {tag} {sha256} {sha8}"
            ) from None

    if metrics is None:
        metrics = {f"{config.get('data', 'validation')}:{k}": v for k, v in _run_metrics(history).items()}
    if not metrics:
        raise InvalidArgumentError(
            f"a zoo weights entry needs measured metrics and {src} has no history.json with validation metrics: "
            "pass metrics={'<data>:<metric>': value} (CLI: --metric KEY=VALUE)"
        )
    if training_data is None:
        training_data = config.get("data") if config.get("data") not in (None, "<datasets>") else None
    if not training_data:
        raise InvalidArgumentError(f"cannot tell what {src} was trained on: pass training_data")
    recipe = {k: config[k] for k in ("epochs", "batch_size", "learning_rate", "augment", "steps_per_epoch", "seed")
              if config.get(k) is not None}
    if made_by is None:
        made_by = f"trained by lmkzoo {__version__} with the {name} recipe" + (
            f" ({', '.join(f'{k} {v}' for k, v in recipe.items())})" if recipe else "")

    def make_entry(sha: str, size: int, filename: str) -> dict:
        entry = {
            "url": make_url(url_template, sha, filename),
            **({"mirrors": [make_url(m, sha, filename) for m in mirrors]} if mirrors else {}),
            "sha256": sha,
            "size": size,
            "format": ".weights.h5",
            "license": license,
            "training_data": training_data,
            "data_license": data_license,
            "made_by": made_by,
            "metrics": {str(k): float(v) for k, v in dict(metrics).items()},
            **({"recipe": recipe} if recipe else {}),
            "version": __version__,
        }
        validate_weights_entry(entry, where=f"{name}.weights")
        return entry

    mirrors = list(mirrors or ())
    make_entry("0" * 64, 1, f"{name}-00000000.weights.h5")  # raises on a bad card

    # the weights: rebuilt exactly as lmkzoo.load will rebuild them
    overrides = dict(builder_overrides if builder_overrides is not None else (config.get("builder_overrides") or {}))
    family = get_family(spec.family)
    if keras_file is not None and source_net is None:
        source_net = _load_keras_file(keras_file)

    def zoo_codec_config():  # the codec lmkzoo.load would build for these overrides
        if hasattr(family, "build_codec"):
            return _codec_config(family.build_codec(spec, **overrides))
        return _codec_config(build_network(spec, **overrides))

    if source_net is not None:
        b = _codec_config(source_net)
        a = zoo_codec_config()
        if a != b and builder_overrides is None and b.get("meanface") is not None \
                and "meanface" in family.builder_keys and "meanface" not in overrides:
            overrides["meanface"] = b["meanface"]  # trained with its own mean face: the zoo entry must say so
            a = zoo_codec_config()
        if a != b:
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise InvalidArgumentError(
                f"{keras_file}'s codec differs from {name} built with builder overrides {sorted(overrides)} in {diff}; "
                "pass the builder_overrides it was trained with"
            )

    net = build_network(spec, **overrides)
    out = Path(out_dir).expanduser() if out_dir is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{os.getpid()}-{name}.weights.h5"
    try:
        if source_net is not None:
            source_net.save_weights(str(tmp))
        else:
            shutil.copyfile(weights_file, tmp)
        try:
            net.load_weights(str(tmp))
        except (ValueError, KeyError) as e:
            raise InvalidArgumentError(
                f"the weights of {src} do not fit {name} built with builder overrides {overrides or '{}'}: {e}"
            ) from None
        if source_net is not None:  # the published file must reproduce the model exactly
            w, h = spec.input_size
            x = np.random.default_rng(0).normal(size=(1, h, w, 3)).astype("float32")
            ya, yb = source_net(x, training=False), net(x, training=False)
            worst = max(float(np.max(np.abs(np.asarray(ya[k]) - np.asarray(yb[k])))) for k in ya)
            if worst > 1e-5:
                raise InvalidArgumentError(f"{name} rebuilt from the published weights differs from {src} by {worst:g}")
        sha = sha256_file(tmp)
        filename = f"{name}-{sha[:8]}.weights.h5"
        entry = make_entry(sha, tmp.stat().st_size, filename)
        final = out / filename
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return PublishedWeights(name=name, path=final, sha256=sha, size=entry["size"], url=entry["url"], entry=entry,
                            builder=overrides)
