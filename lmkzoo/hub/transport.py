"""Transport: one source copied into a ``.part`` file. HTTP(S) through :mod:`urllib.request` (``Range`` requests
resume a partial file, a server that ignores them restarts it from byte 0, connection and read timeouts), ``file://``
URLs and plain folders by copying, and the retries: transient errors (timeouts, dropped connections, HTTP
408/425/429/5xx) are retried with exponential backoff until ``LMKZOO_HUB_RETRIES`` attempts made no net progress,
permanent ones (404, 403, an unknown host) give the source up at once.

What the bytes are worth (SHA-256, the atomic move, the lock) is :mod:`lmkzoo.hub.cache`'s business.
"""

from __future__ import annotations

import http.client
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
from pathlib import Path

from lmkzoo.hub.settings import is_offline

log = logging.getLogger("lmkzoo.hub")

_CHUNK = 1 << 16
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
# backoff between attempts: base * 2**(n-1) seconds (+-25% jitter), capped; tests shrink the base
_BACKOFF_BASE = 0.5
_BACKOFF_MAX = 16.0


def _is_local(source: str) -> bool:
    return not source.startswith(("http://", "https://"))


def _local_path(source: str) -> Path:
    if source.startswith("file://"):
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
    return Path(source).expanduser()


class SourceFailed(Exception):
    """A source given up: ``reason`` says why (``"<source>: <why>"``); ``out_of_time`` when the time limit stopped it."""

    def __init__(self, reason: str, *, out_of_time: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.out_of_time = out_of_time


class Attempts:
    """The failed-attempt count of one source. An attempt counts as progress only when it leaves the partial file
    longer than it ever was; progress starts a fresh count."""

    def __init__(self, part: Path):
        self.failures = 0
        self.longest = part.stat().st_size if part.exists() else 0


def transfer(source: str, part: Path, attempts: Attempts, *, retries: int, timeout: float, deadline: float,
             progress: bool, desc: str) -> str:
    """Fill ``part`` from ``source`` (resuming it when the source allows), retrying transient failures.

    Returns how the file came (``"full"``, ``"resumed"``, ``"restarted"``, ``"copied"``, ...). Raises
    :class:`SourceFailed` when the source is given up (a permanent error, ``retries`` attempts without progress,
    the ``deadline``), and ``OSError`` when writing ``part`` fails (the disk, not the network).
    """
    while True:
        if time.monotonic() > deadline:
            raise SourceFailed(f"{source}: not tried before the time limit", out_of_time=True)
        try:
            if _is_local(source):
                return _transfer_local(source, part)
            if is_offline():  # belt and braces: fetch() already refused
                raise _Permanent("LMKZOO_OFFLINE=1")
            return _transfer_http(source, part, timeout=timeout, deadline=deadline, progress=progress, desc=desc)
        except _Permanent as e:
            raise SourceFailed(f"{source}: {e}") from None
        except _Deadline as e:
            raise SourceFailed(f"{source}: {e}", out_of_time=True) from None
        except _Transient as e:
            size = part.stat().st_size if part.exists() else 0
            if e.progressed and size > attempts.longest:  # further than any attempt before: a fresh count
                attempts.failures, attempts.longest = 1, size
            else:  # nothing new (a restart from byte 0 that stopped where the last one did is no progress)
                attempts.failures += 1
            failures = attempts.failures
            log.warning("downloading %s: %s (attempt %d of %d)", source, e, failures, retries)
            if failures >= retries:
                raise SourceFailed(f"{source}: {e} ({failures} attempt{'s' if failures != 1 else ''})") from None
            wait = _backoff(failures, e.retry_after)
            if time.monotonic() + wait > deadline:
                raise SourceFailed(f"{source}: {e}", out_of_time=True) from None
            time.sleep(wait)


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
