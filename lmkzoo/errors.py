"""Typed errors of lmkzoo.

Every error names the value it received and, where there is a closed set, the values that are allowed.
All of them derive from :class:`LmkzooError`, and each also derives from the builtin exception a caller
would naturally catch (``ValueError``, ``KeyError``, ``OSError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "LmkzooError",
    "InvalidArgumentError",
    "ShapeMismatchError",
    "UnknownSchemeError",
    "SchemeMismatchError",
    "UnknownModelError",
    "WeightsUnavailableError",
    "ChecksumMismatchError",
    "InvalidImageError",
    "NoFaceFoundError",
    "DatasetFormatError",
    "CheckpointMismatchError",
    "UnknownDatasetError",
    "StorageError",
    "did_you_mean",
]


def _allowed(values, limit: int = 30) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    if len(values) > limit:
        shown += f", ... ({len(values)} in total)"
    return shown


def did_you_mean(name, candidates, n: int = 3) -> str:
    """``"did you mean 'pipnet_lite'?"`` for the closest ``candidates`` of a misspelt ``name`` (difflib), or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=n, cutoff=0.6)
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


class LmkzooError(Exception):
    """Base class of every lmkzoo error."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidArgumentError(LmkzooError, ValueError):
    """An argument has a value outside what the function accepts."""


class ShapeMismatchError(InvalidArgumentError):
    """Arrays that must agree in shape do not."""


class UnknownSchemeError(LmkzooError, KeyError):
    """A landmark scheme name that lmkzoo does not declare."""

    def __init__(self, name, allowed):
        self.name = name
        self.allowed = tuple(allowed)
        super().__init__(f"unknown landmark scheme {name!r}; known schemes: {_allowed(self.allowed)}")


class SchemeMismatchError(InvalidArgumentError):
    """Points do not fit the landmark scheme they are used with."""


class UnknownModelError(LmkzooError, KeyError):
    """A model name that is not in zoo.yaml."""

    def __init__(self, name, allowed, hint: str = ""):
        self.name = name
        self.allowed = tuple(allowed)
        msg = f"unknown model {name!r}" + (f" ({hint})" if hint else "")  # the likely fix before the long list
        super().__init__(f"{msg}; zoo models: {_allowed(self.allowed)}")


class WeightsUnavailableError(LmkzooError, OSError):
    """Weights cannot be obtained (offline, every URL failed, no weights published)."""

    def __init__(self, message: str, *, url: str | None = None, cache_path=None):
        self.url = url
        self.cache_path = cache_path
        super().__init__(message)


class ChecksumMismatchError(LmkzooError, OSError):
    """A downloaded or local file does not have the SHA-256 it must have."""

    def __init__(self, path, expected: str, actual: str, *, url: str | None = None, hint: str = ""):
        self.path = path
        self.expected = expected
        self.actual = actual
        self.url = url
        src = f" (from {url})" if url else ""
        msg = f"SHA-256 mismatch for {path}{src}: expected {expected}, got {actual}"
        super().__init__(msg + (f". {hint}" if hint else ""))


class InvalidImageError(LmkzooError, ValueError):
    """An image that cannot be used: unreadable file, wrong dtype, wrong number of channels."""


class NoFaceFoundError(LmkzooError, LookupError):
    """Raised only when the caller asks for it (``require_face=True``): the detector found no face."""


class DatasetFormatError(LmkzooError, ValueError):
    """A dataset file does not follow its format. Names the file and, where there is one, the line."""

    def __init__(self, message: str, *, path=None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)


class CheckpointMismatchError(InvalidArgumentError):
    """A checkpoint whose keys or shapes do not match the model it is loaded into."""


class UnknownDatasetError(LmkzooError, KeyError):
    """A dataset name, config or split that TFDS (with lmkzoo's builders registered) does not know."""


class StorageError(LmkzooError, OSError):
    """A file or folder lmkzoo must write cannot be written: disk full, read-only, a file where a folder must be.

    Names the path and the operating system's reason; ``errno`` and ``filename`` are those of the ``OSError``.
    """

    def __init__(self, message: str, *, path=None, errno: int | None = None):
        super().__init__(message)
        self.filename = None if path is None else str(path)
        self.errno = errno

    @classmethod
    def from_os_error(cls, err: OSError, path, doing: str, hint: str = ""):
        """``StorageError`` for ``err`` (raised while ``doing`` something with ``path``)."""
        reason = err.strerror or str(err)
        msg = f"cannot {doing} {path}: {reason}" + (f" [errno {err.errno}]" if err.errno else "")
        return cls(msg + (f". {hint}" if hint else ""), path=path, errno=err.errno)
