"""Weights hub: the one function that downloads anything (:func:`fetch`), pre-fetching for air-gapped
machines (:func:`download`); publishing a trained model's weights is :mod:`lmkzoo.training.publish`.

Modules: :mod:`~lmkzoo.hub.settings` (the environment below), :mod:`~lmkzoo.hub.transport` (HTTP and file
transfers, ``Range`` resume, timeouts, retries), :mod:`~lmkzoo.hub.cache` (:func:`fetch`: hashes, lock, atomic
moves) and :mod:`~lmkzoo.hub.prefetch` (:func:`download`).

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

from lmkzoo.hub.cache import check_sha256, fetch, sha256_file, split_sha256_fragment
from lmkzoo.hub.prefetch import download
from lmkzoo.hub.settings import home, is_offline, weights_dir

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

#: where ``lmkzoo publish`` says a weights file will live (``{version}``, ``{filename}``, ``{name}``, ``{arch}``,
#: ``{tag}``, ``{sha256}``, ``{sha8}`` are filled in)
DEFAULT_URL_TEMPLATE = "https://github.com/lmkzoo/lmkzoo/releases/download/weights-v{version}/{filename}"
