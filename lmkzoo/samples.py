"""Sample photos shipped with lmkzoo (``lmkzoo/assets/samples``; origins and licences in its README)."""

from __future__ import annotations

from pathlib import Path

from lmkzoo.errors import InvalidArgumentError

__all__ = ["sample_image", "SAMPLES"]

_FOLDER = Path(__file__).resolve().parent / "assets" / "samples"
#: name → file: ``astronaut`` is NASA's public-domain portrait of Eileen Collins (skimage.data.astronaut)
SAMPLES = {"astronaut": "astronaut.jpg"}


def sample_image(name: str = "astronaut") -> Path:
    """Path of a bundled sample photo."""
    if name not in SAMPLES:
        raise InvalidArgumentError(f"unknown sample image {name!r}; available: {sorted(SAMPLES)}")
    return _FOLDER / SAMPLES[name]
