"""The hub's environment: the cache folder (``LMKZOO_HOME``), offline mode (``LMKZOO_OFFLINE``) and the transfer
limits (``LMKZOO_HUB_TIMEOUT``, ``LMKZOO_HUB_MAX_TIME``, ``LMKZOO_HUB_RETRIES``); see :mod:`lmkzoo.hub`."""

from __future__ import annotations

import math
import os
from pathlib import Path

from lmkzoo.errors import InvalidArgumentError


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
