"""The :class:`Scheme`: every fact about a landmark layout, declared once as data (``<name>.yaml``).

A scheme file holds the point names, the horizontal-flip permutation, the NME normalisation index groups,
the 5-point alignment groups and the drawing polylines. Everything else (flip pairs, skeleton edges,
normalising distances, 5-point extraction) is derived here, so datasets, codecs, augmentation, metrics and
drawing never hard-code an index.

Left and right are *image* left and right of an upright, frontal face (``left_eye`` is the eye nearer to
x = 0), the convention of the 300-W, WFLW and JD-landmark annotation files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError, SchemeMismatchError

__all__ = ["Scheme"]

IndexGroup = tuple[int, ...]


def _group(value, name: str, n: int) -> IndexGroup:
    g = (int(value),) if np.isscalar(value) else tuple(int(v) for v in value)
    if not g or any(not 0 <= v < n for v in g):
        raise SchemeMismatchError(f"{name}: index group {value!r} must be non-empty with indices in [0, {n})")
    return g


@dataclasses.dataclass(frozen=True, eq=False)
class Scheme:
    """A landmark layout. Build it with :meth:`from_dict` (validates everything) or load a packaged one
    with :func:`lmkzoo.schemes.get`.

    Attributes:
        name: registry name (``"ibug68"``).
        names: one name per point, in index order.
        flip_permutation: ``new[k] = old[flip_permutation[k]]`` after mirroring x; an involution.
        nme_norm_indices: ``{"inter_ocular": (group_a, group_b), "inter_pupil": ...}``: the distance
            between the mean of ``group_a`` and the mean of ``group_b`` of the ground truth.
        five_point_indices: five index groups (left eye, right eye, nose tip, left / right mouth corner)
            whose means give the 5 alignment points.
        polylines: ``((indices, closed), ...)`` for drawing.
        regions: ``{region: indices}`` for per-region reports.
    """

    name: str
    names: tuple[str, ...]
    flip_permutation: tuple[int, ...]
    nme_norm_indices: Mapping[str, tuple[IndexGroup, IndexGroup]]
    five_point_indices: tuple[IndexGroup, ...] | None
    polylines: tuple[tuple[tuple[int, ...], bool], ...]
    regions: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    description: str = ""
    source: str = ""

    # ------------------------------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, d: Mapping) -> Scheme:
        known = {"name", "description", "source", "names", "flip_permutation", "norm", "five_point",
                 "polylines", "regions"}
        unknown = set(d) - known
        if unknown:
            raise SchemeMismatchError(f"scheme {d.get('name')!r}: unknown keys {sorted(unknown)}; allowed {sorted(known)}")
        name = str(d["name"])
        names = tuple(str(v) for v in d["names"])
        n = len(names)
        if len(set(names)) != n:
            dup = sorted({v for v in names if names.count(v) > 1})
            raise SchemeMismatchError(f"scheme {name!r}: duplicate point names {dup}")
        perm = tuple(int(v) for v in d["flip_permutation"])
        if sorted(perm) != list(range(n)):
            raise SchemeMismatchError(f"scheme {name!r}: flip_permutation must be a permutation of 0..{n - 1}")
        if any(perm[perm[i]] != i for i in range(n)):
            raise SchemeMismatchError(f"scheme {name!r}: flip_permutation is not an involution")
        norm = {}
        for key, pair in (d.get("norm") or {}).items():
            if len(pair) != 2:
                raise SchemeMismatchError(f"scheme {name!r}: norm {key!r} needs two index groups; got {pair!r}")
            norm[str(key)] = (_group(pair[0], f"{name}.norm.{key}", n), _group(pair[1], f"{name}.norm.{key}", n))
        fp = d.get("five_point")
        if fp is not None:
            if len(fp) != 5:
                raise SchemeMismatchError(f"scheme {name!r}: five_point needs 5 index groups; got {len(fp)}")
            fp = tuple(_group(g, f"{name}.five_point", n) for g in fp)
        polylines = []
        for pl in d.get("polylines") or ():
            idx = tuple(_group(pl["points"], f"{name}.polylines", n))
            polylines.append((idx, bool(pl.get("closed", False))))
        regions = {str(k): _group(v, f"{name}.regions.{k}", n) for k, v in (d.get("regions") or {}).items()}
        return cls(
            name=name,
            names=names,
            flip_permutation=perm,
            nme_norm_indices=norm,
            five_point_indices=fp,
            polylines=tuple(polylines),
            regions=regions,
            description=str(d.get("description", "")).strip(),
            source=str(d.get("source", "")).strip(),
        )

    @classmethod
    def from_yaml(cls, path) -> Scheme:
        import yaml

        with open(path, encoding="utf-8") as f:
            return cls.from_dict(yaml.safe_load(f))

    def to_dict(self) -> dict:
        """Plain-Python form (inverse of :meth:`from_dict`); stored in model configs and export metadata."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "names": list(self.names),
            "flip_permutation": list(self.flip_permutation),
            "norm": {k: [list(a), list(b)] for k, (a, b) in self.nme_norm_indices.items()},
            "five_point": None if self.five_point_indices is None else [list(g) for g in self.five_point_indices],
            "polylines": [{"points": list(p), "closed": c} for p, c in self.polylines],
            "regions": {k: list(v) for k, v in self.regions.items()},
        }

    # ------------------------------------------------------------------------------------------ derived
    @property
    def num_points(self) -> int:
        return len(self.names)

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """``(i, j)`` with ``i < j`` that swap under a horizontal flip."""
        return tuple((i, j) for i, j in enumerate(self.flip_permutation) if i < j)

    @property
    def sides(self) -> np.ndarray:
        """Per point: -1 on the image-left side (a ``left`` word in its name), +1 image-right, 0 otherwise."""
        out = np.zeros(self.num_points, np.int8)
        for i, name in enumerate(self.names):
            words = name.lower().split("_")
            out[i] = -1 if "left" in words else (1 if "right" in words else 0)
        return out

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:
        """Edges ``(i, j)`` to draw, from the polylines."""
        edges = []
        for idx, closed in self.polylines:
            edges += list(zip(idx[:-1], idx[1:]))
            if closed and len(idx) > 2:
                edges.append((idx[-1], idx[0]))
        return tuple(edges)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise SchemeMismatchError(f"scheme {self.name!r} has no point named {name!r}") from None

    def check_points(self, points) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        if p.ndim < 2 or p.shape[-1] != 2 or p.shape[-2] != self.num_points:
            raise SchemeMismatchError(
                f"scheme {self.name!r} needs points of shape (..., {self.num_points}, 2); got {p.shape}"
            )
        return p

    def _group_mean(self, p, group):
        return p[..., list(group), :].mean(axis=-2)

    def norm_distance(self, points, kind: str = "inter_ocular") -> np.ndarray:
        """Distance between the two index groups of ``kind`` for points ``(..., K, 2)``."""
        if kind not in self.nme_norm_indices:
            raise InvalidArgumentError(
                f"scheme {self.name!r} defines no {kind!r} normalisation; it defines {sorted(self.nme_norm_indices)}"
            )
        p = self.check_points(points)
        a, b = self.nme_norm_indices[kind]
        return np.linalg.norm(self._group_mean(p, a) - self._group_mean(p, b), axis=-1)

    def five_points(self, points) -> np.ndarray:
        """The 5 alignment points ``(..., 5, 2)`` (means of :attr:`five_point_indices`)."""
        if self.five_point_indices is None:
            raise InvalidArgumentError(f"scheme {self.name!r} defines no 5-point alignment indices")
        p = self.check_points(points)
        return np.stack([self._group_mean(p, g) for g in self.five_point_indices], axis=-2)

    def flip(self, points, width: float) -> np.ndarray:
        """Mirror ``(..., K, 2)`` points in an image of ``width`` and permute left and right."""
        p = self.check_points(points).copy()
        p[..., 0] = width - p[..., 0]
        return p[..., list(self.flip_permutation), :]

    def __repr__(self) -> str:
        return f"Scheme({self.name!r}, num_points={self.num_points})"


def load_conversion(path: Path, src: Scheme, dst: Scheme) -> np.ndarray:
    """Read a conversion file into a ``(dst.num_points, src.num_points, 2)`` weight array.

    ``out[i, c] = sum_j W[i, j, c] * points[j, c]``: one weight per source point and axis, so a row can
    take x from one point and average y over two (PIPNet's WFLW→68 brows). Each row's weights sum to 1
    per axis.
    """
    import yaml

    with open(path, encoding="utf-8") as f:
        d = yaml.safe_load(f)
    rows = d["points"]
    if len(rows) != dst.num_points:
        raise SchemeMismatchError(f"{path.name}: {len(rows)} rows, but {dst.name} has {dst.num_points} points")
    m = np.zeros((dst.num_points, src.num_points, 2))
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            idx = _group(row["from"], path.name, src.num_points)
            default = [1.0 / len(idx)] * len(idx)
            w = row.get("weights", default)
            wx = np.asarray(row.get("weights_x", w), dtype=np.float64)
            wy = np.asarray(row.get("weights_y", w), dtype=np.float64)
        else:
            idx = _group(row, path.name, src.num_points)
            wx = wy = np.ones(1)
        for axis, w in enumerate((wx, wy)):
            if w.shape != (len(idx),) or not np.isclose(w.sum(), 1.0, atol=1e-5):
                raise SchemeMismatchError(
                    f"{path.name}: row {i} weights {w.tolist()} must have one value per index and sum to 1"
                )
            m[i, list(idx), axis] = w / w.sum()
    return m


def convert_points(points, matrix: np.ndarray, src: Scheme) -> np.ndarray:
    """Apply a ``(D, S, 2)`` conversion array to points ``(..., S, 2)`` of ``src``."""
    p = src.check_points(points)
    return np.einsum("ijc,...jc->...ic", matrix, p)
