"""The shipped assets' one home: files under ``lmkzoo/assets/`` (mean faces, detectors, the sample photo; each folder's
README says where they come from) and the readers of the PIPNet mean faces.

A mean face is ``(K, 2)`` landmarks normalised by the crop size; PIPNet builds its neighbour tables from it
(docs/reference_facts.md §A4). :data:`SCHEME_MEANFACES` names PIPNet's own mean face per scheme.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["ASSETS", "SCHEME_MEANFACES", "read_meanface", "packaged_meanface", "scheme_meanface"]

ASSETS = Path(__file__).resolve().parent

#: PIPNet's own mean faces per scheme (used when a spec names none and no training set is at hand)
SCHEME_MEANFACES = {
    "wflw98": "pipnet_wflw",
    "ibug68": "pipnet_300w",
    "cofw29": "pipnet_cofw",
    "aflw19": "pipnet_aflw",
    "jd106": "pipnet_lapa",
}


def read_meanface(path) -> np.ndarray:
    """Read a PIPNet ``meanface.txt`` (one line ``x0 y0 x1 y1 ...``, normalised) into ``(K, 2)``."""
    from lmkzoo.errors import DatasetFormatError

    text = Path(path).read_text().split()
    try:
        values = np.array([float(v) for v in text], dtype=np.float64)
    except ValueError as e:
        raise DatasetFormatError(f"meanface must hold numbers only ({e})", path=path, line=1) from None
    if values.size == 0 or values.size % 2:
        raise DatasetFormatError(f"meanface needs an even, non-zero count of numbers; got {values.size}", path=path, line=1)
    return values.reshape(-1, 2)


def packaged_meanface(name: str) -> np.ndarray:
    """A mean face shipped in ``lmkzoo/assets/meanfaces`` (``pipnet_wflw``, ``pipnet_300w``, ...)."""
    folder = ASSETS / "meanfaces"
    path = folder / f"{name}.txt"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.txt"))
        raise InvalidArgumentError(f"unknown packaged mean face {name!r}; available: {known}")
    return read_meanface(path)


def scheme_meanface(scheme: str) -> np.ndarray | None:
    """PIPNet's packaged mean face of ``scheme`` (:data:`SCHEME_MEANFACES`), or ``None`` when none ships."""
    return packaged_meanface(SCHEME_MEANFACES[scheme]) if scheme in SCHEME_MEANFACES else None
