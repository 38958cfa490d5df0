"""Landmark schemes: names, flip permutation, NME normalisation, 5-point groups and skeleton, as data.

>>> from lmkzoo import schemes
>>> s = schemes.get("ibug68")
>>> s.num_points, s.flip_permutation[36], s.nme_norm_indices["inter_ocular"]
(68, 45, ((36,), (45,)))

Packaged schemes: ``ibug68``, ``wflw98``, ``jd106``, ``cofw29``, ``aflw19``, ``menpo39`` and ``five_point``.
:func:`register` adds a user scheme (a custom dataset, a synthetic test scheme). :func:`convert` maps points
between schemes where a conversion is declared (``wflw98 → ibug68``, ``jd106 → ibug68``, any scheme with
5-point groups → ``five_point``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError, UnknownSchemeError
from lmkzoo.schemes.scheme import Scheme, convert_points, load_conversion

__all__ = ["Scheme", "get", "names", "register", "convert", "conversion_matrix", "conversions"]

_DIR = Path(__file__).parent
_BUILTIN = ("ibug68", "wflw98", "jd106", "cofw29", "aflw19", "menpo39", "five_point")
_USER: dict[str, Scheme] = {}


def names() -> list[str]:
    """Names of every known scheme (packaged first, then registered ones)."""
    return list(_BUILTIN) + [n for n in _USER if n not in _BUILTIN]


@cache
def _load_builtin(name: str) -> Scheme:
    return Scheme.from_yaml(_DIR / f"{name}.yaml")


def get(name) -> Scheme:
    """The scheme called ``name`` (a :class:`Scheme` passes through)."""
    if isinstance(name, Scheme):
        return name
    if not isinstance(name, str):
        raise InvalidArgumentError(f"a scheme name must be a string; got {type(name).__name__} {name!r}")
    if name in _USER:
        return _USER[name]
    if name in _BUILTIN:
        return _load_builtin(name)
    raise UnknownSchemeError(name, names())


def register(scheme, *, overwrite: bool = False) -> Scheme:
    """Register a user scheme (a :class:`Scheme` or a dict in the packaged YAML layout)."""
    s = scheme if isinstance(scheme, Scheme) else Scheme.from_dict(scheme)
    if s.name in _BUILTIN:
        raise InvalidArgumentError(f"{s.name!r} is a packaged scheme and cannot be replaced")
    if s.name in _USER and not overwrite:
        raise InvalidArgumentError(f"scheme {s.name!r} is already registered; pass overwrite=True to replace it")
    _USER[s.name] = s
    return s


_CONVERSIONS = {("wflw98", "ibug68"): "wflw98_to_ibug68.yaml", ("jd106", "ibug68"): "jd106_to_ibug68.yaml"}


def conversions() -> list[tuple[str, str]]:
    """Declared ``(src, dst)`` conversions besides ``* → five_point``."""
    return sorted(_CONVERSIONS)


@cache
def _builtin_matrix(src: str, dst: str) -> np.ndarray:
    return load_conversion(_DIR / "conversions" / _CONVERSIONS[(src, dst)], get(src), get(dst))


def conversion_matrix(src, dst) -> np.ndarray:
    """``(dst.num_points, src.num_points, 2)`` weights ``W``: ``dst[i, c] = sum_j W[i, j, c] src[j, c]``."""
    s, d = get(src), get(dst)
    if s.name == d.name:
        return np.repeat(np.eye(s.num_points)[..., None], 2, axis=-1)
    if (s.name, d.name) in _CONVERSIONS:
        return _builtin_matrix(s.name, d.name).copy()
    if d.name == "five_point" and s.five_point_indices is not None:
        m = np.zeros((5, s.num_points, 2))
        for i, g in enumerate(s.five_point_indices):
            m[i, list(g)] = 1.0 / len(g)
        return m
    allowed = [f"{a}->{b}" for a, b in conversions()] + ["<any scheme with 5-point groups>->five_point"]
    raise InvalidArgumentError(f"no conversion from {s.name!r} to {d.name!r}; declared: {allowed}")


def convert(points, src, dst) -> np.ndarray:
    """Convert points ``(..., K_src, 2)`` of scheme ``src`` into scheme ``dst``."""
    return convert_points(points, conversion_matrix(src, dst), get(src))
