"""MATLAB ``.mat`` files of every version behind one reader.

* MAT v4 / v5 / v7 files are read with ``scipy.io.loadmat``.
* MAT v7.3 files are HDF5; ``scipy.io`` refuses them, so they are read with ``h5py``. HDF5 stores MATLAB's
  column-major arrays with their axes reversed and cell arrays as arrays of object references; :func:`load_mat`
  undoes both, so a v7.3 file gives the same arrays as the same data saved in v5 (a cell ``N x 1`` of
  ``H x W x 3`` images comes back as an object array of shape ``(N, 1)`` holding ``(H, W, 3)`` arrays).

Anything unreadable (missing file, not a MAT file, truncated HDF5, a missing variable) raises
:class:`lmkzoo.errors.DatasetFormatError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmkzoo.errors import DatasetFormatError

__all__ = ["load_mat", "mat_version", "cell_items"]


def mat_version(path) -> str:
    """``"7.3"`` (HDF5) or ``"5"`` (v4/v5/v7, what scipy reads), from the file header."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(128)
    except OSError as e:
        raise DatasetFormatError(f"cannot read .mat file ({e})", path=path) from None
    if head[:8] == b"\x89HDF\r\n\x1a\n" or b"MATLAB 7.3" in head[:116]:
        return "7.3"
    return "5"


def load_mat(path, variables=None) -> dict:
    """The variables of a ``.mat`` file as numpy arrays in MATLAB orientation.

    Args:
        variables: names to load (all if None); each must exist.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetFormatError("file not found", path=path)
    version = mat_version(path)
    try:
        import h5py  # noqa: F401
        import scipy.io  # noqa: F401
    except ImportError as e:
        raise ImportError(f"reading {path.name} needs h5py and scipy: pip install 'lmkzoo[datasets]' ({e})") from None
    try:
        out = _load_h5(path, variables) if version == "7.3" else _load_scipy(path, variables)
    except DatasetFormatError:
        raise
    except Exception as e:  # scipy / h5py raise many types for corrupt files
        raise DatasetFormatError(f"unreadable MAT v{version} file ({type(e).__name__}: {e})", path=path) from None
    if variables is not None:
        missing = [v for v in variables if v not in out]
        if missing:
            raise DatasetFormatError(f"variables {missing} missing; the file holds {sorted(out)}", path=path)
    return out


def _load_scipy(path: Path, variables) -> dict:
    import scipy.io

    d = scipy.io.loadmat(str(path), variable_names=None if variables is None else list(variables))
    return {k: v for k, v in d.items() if not k.startswith("__")}


def _load_h5(path: Path, variables) -> dict:
    import h5py

    out = {}
    with h5py.File(str(path), "r") as f:
        names = [k for k in f.keys() if not k.startswith("#")] if variables is None else list(variables)
        for name in names:
            if name in f:
                out[name] = _h5_value(f, f[name])
    return out


def _h5_value(f, node):
    import h5py

    if isinstance(node, h5py.Group):  # a struct: one field per member
        return {k: _h5_value(f, node[k]) for k in node.keys()}
    attrs = node.attrs
    mclass = attrs.get("MATLAB_class", b"")
    mclass = mclass.decode() if isinstance(mclass, bytes) else str(mclass)
    if attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    data = node[()]
    if node.dtype == h5py.ref_dtype or (data.dtype == object and data.size and isinstance(data.flat[0], h5py.Reference)):
        refs = np.asarray(data).T
        cell = np.empty(refs.shape, dtype=object)
        for idx in np.ndindex(refs.shape):
            cell[idx] = _h5_value(f, f[refs[idx]])
        return cell
    arr = np.asarray(data).T
    if mclass == "char":
        return "".join(chr(int(c)) for c in arr.ravel(order="F"))
    if mclass == "logical":
        return arr.astype(bool)
    return arr


def cell_items(cell, *, path=None, name: str = "cell") -> list:
    """The elements of a MATLAB cell vector (``N x 1`` or ``1 x N`` object array) as a list."""
    a = np.asarray(cell, dtype=object)
    if a.ndim != 2 or 1 not in a.shape:
        raise DatasetFormatError(f"{name} must be a cell vector (N x 1 or 1 x N); got shape {a.shape}", path=path)
    return list(a.reshape(-1))
