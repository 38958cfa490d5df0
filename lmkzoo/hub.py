"""Weights hub: the one function that downloads anything (:func:`fetch`), pre-fetching for air-gapped
machines (:func:`download`); publishing a trained model's weights is :mod:`lmkzoo.training.publish`.

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
    attempts per URL that make no net progress (default 4): an attempt counts as progress only when the partial
    file ends up longer than it ever was, so a server that keeps sending the same first part of a file (and
    ignores ``Range``) fails after this many attempts instead of restarting until the time limit.

Each setting must be a positive finite number (``LMKZOO_HUB_RETRIES`` an integer); anything else (``nan``, ``inf``,
``0``, ``-1``, ``soon``) raises :class:`~lmkzoo.errors.InvalidArgumentError` naming the variable.

The cache folder must be writable: a read-only one, a file where the folder must be, or a disk that fills up during
the download raise :class:`~lmkzoo.errors.StorageError` naming the path, and the partial file is removed.

Only the standard library speaks HTTP here (:mod:`urllib.request`), so proxies from the usual
``https_proxy`` / ``no_proxy`` variables apply.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import math
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

from lmkzoo.errors import ChecksumMismatchError, InvalidArgumentError, StorageError, WeightsUnavailableError

__all__ = [
    "fetch",
    "download",
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


def _env_number(name: str, default, kind=float, unit: str = "a number of seconds"):
    """The environment variable ``name`` as a positive finite ``kind`` (``default`` when unset or empty)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"{name} must be {unit}; got {raw!r} (it must be positive and finite)")
    return value


def _settings() -> tuple[float, float, int]:
    timeout = _env_number("LMKZOO_HUB_TIMEOUT", 30.0)
    max_time = _env_number("LMKZOO_HUB_MAX_TIME", 3600.0)
    retries = _env_number("LMKZOO_HUB_RETRIES", 4, kind=int, unit="a whole number of attempts")
    return timeout, max_time, retries


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
    try:
        fi = open(src, "rb")
    except OSError as e:
        raise _Permanent(f"cannot read {src} ({e.strerror or e})") from None
    with fi, open(part, "wb") as fo:
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
        longest = part.stat().st_size if part.exists() else 0  # net progress: the partial file grows past this
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
                size = part.stat().st_size if part.exists() else 0
                if e.progressed and size > longest:  # further than any attempt before: a fresh count
                    failures, longest = 1, size
                else:  # nothing new (a restart from byte 0 that stopped where the last one did is no progress)
                    failures += 1
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
            except OSError as e:  # network errors are _Transient: this is the disk (full, read-only, ...)
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
