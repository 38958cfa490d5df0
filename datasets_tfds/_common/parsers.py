"""Parsers of the annotation formats the builders read, each converting to lmkzoo's pixel convention.

Every malformed file raises :class:`lmkzoo.errors.DatasetFormatError` naming the file and the line.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from lmkzoo.errors import DatasetFormatError

__all__ = [
    "read_pts", "read_dlib_xml", "read_points_csv", "read_count_points_txt", "read_rect", "read_wflw_list",
    "tight_box", "IMAGE_SUFFIXES", "find_image", "read_text_lines", "parse_floats", "pixel_index_box",
    "WFLW_ATTRIBUTES",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".JPG", ".JPEG", ".PNG")


def read_text_lines(path, what: str = "annotation file") -> list[str]:
    """The lines of a text file; a missing or undecodable file raises :class:`DatasetFormatError`."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetFormatError(f"cannot read {what} ({e})", path=path) from None


def parse_floats(tokens, *, path, line: int, what: str = "coordinate") -> np.ndarray:
    """``tokens`` as float64; a non-numeric or non-finite token raises naming the file, the line and the token."""
    out = np.empty(len(tokens), np.float64)
    for i, t in enumerate(tokens):
        try:
            out[i] = float(t)
        except ValueError:
            raise DatasetFormatError(f"non-numeric {what} {t!r}", path=path, line=line) from None
        if not np.isfinite(out[i]):
            raise DatasetFormatError(f"non-finite {what} {t!r}", path=path, line=line)
    return out


def read_pts(path, num_points: int | None = None, *, allowed_counts=None, raw: bool = False) -> np.ndarray:
    """iBUG ``.pts`` (``version: 1``, ``n_points: K``, ``{``, K lines ``x y``, ``}``; 1-based) → ``(K, 2)``
    in lmkzoo's convention (``pts - 0.5``; ``raw=True`` keeps the file's values).

    ``num_points`` fixes K; ``allowed_counts`` (e.g. ``(68, 39)`` for Menpo) accepts any of several."""
    path = Path(path)
    lines = read_text_lines(path, ".pts file")
    n = None
    start = None
    for i, line in enumerate(lines):
        s = line.strip()
        if s.lower().startswith("n_points"):
            try:
                n = int(s.split(":", 1)[1])
            except (IndexError, ValueError):
                raise DatasetFormatError(f"bad n_points line {s!r}", path=path, line=i + 1) from None
        if s == "{":
            start = i + 1
            break
    if n is None or start is None:
        raise DatasetFormatError("not an iBUG .pts file (needs 'n_points: K' and '{')", path=path, line=1)
    if num_points is not None and n != num_points:
        raise DatasetFormatError(f"expected {num_points} points, the file declares {n}", path=path, line=2)
    if allowed_counts is not None and n not in allowed_counts:
        raise DatasetFormatError(f"expected one of {sorted(allowed_counts)} points, the file declares {n}", path=path,
                                 line=2)
    pts = []
    for j in range(start, len(lines)):
        s = lines[j].strip()
        if s == "}":
            break
        parts = s.split()
        if len(parts) != 2:
            raise DatasetFormatError(f"expected 'x y', got {s!r}", path=path, line=j + 1)
        try:
            pts.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise DatasetFormatError(f"non-numeric point {s!r}", path=path, line=j + 1) from None
    else:
        raise DatasetFormatError("missing closing '}'", path=path, line=len(lines))
    if len(pts) != n:
        raise DatasetFormatError(f"n_points says {n} but {len(pts)} points follow", path=path, line=start + len(pts) + 1)
    arr = np.asarray(pts, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DatasetFormatError("non-finite coordinate", path=path, line=start + bad + 1)
    return arr.astype(np.float32) if raw else (arr - 0.5).astype(np.float32)


def read_dlib_xml(path, num_points: int | None = None):
    """dlib's imglab XML → ``[(image_file, [(box (4,), points (K, 2) or None), ...]), ...]``.

    dlib boxes ``(left, top, width, height)`` cover pixels ``left .. left+width-1``, i.e. ``[left, left+width)``
    in lmkzoo's corner convention; dlib part coordinates are 0-based pixel centres (``+ 0.5``).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise DatasetFormatError(f"cannot parse dlib XML ({e})", path=path) from None
    images = root.find("images")
    if images is None:
        raise DatasetFormatError("no <images> element (not a dlib imglab file)", path=path)
    out = []
    for img in images.findall("image"):
        file = img.get("file")
        if not file:
            raise DatasetFormatError("<image> without a file attribute", path=path)
        faces = []
        for box in img.findall("box"):
            try:
                left, t = float(box.get("left")), float(box.get("top"))
                w, h = float(box.get("width")), float(box.get("height"))
            except (TypeError, ValueError):
                raise DatasetFormatError(f"bad <box> attributes in image {file!r}: {box.attrib}", path=path) from None
            parts = box.findall("part")
            pts = None
            if parts:
                try:
                    named = sorted((int(p.get("name")), float(p.get("x")), float(p.get("y"))) for p in parts)
                except (TypeError, ValueError):
                    raise DatasetFormatError(f"bad <part> in image {file!r}", path=path) from None
                if num_points is not None and len(named) != num_points:
                    raise DatasetFormatError(f"image {file!r}: expected {num_points} parts, got {len(named)}", path=path)
                if [n for n, _, _ in named] != list(range(len(named))):
                    raise DatasetFormatError(f"image {file!r}: part names must be 0..K-1", path=path)
                pts = np.array([[x + 0.5, y + 0.5] for _, x, y in named], dtype=np.float32)
            faces.append((np.array([left, t, left + w, t + h], dtype=np.float32), pts))
        out.append((file, faces))
    return out


def read_points_csv(path, num_points: int, *, convention: str = "corner"):
    """A CSV of points: column ``image``, then ``x0, y0, ..., x{K-1}, y{K-1}``; optional ``face_found`` (0 rows
    are skipped), ``visible{i}`` and ``box_x0, box_y0, box_x1, box_y1``. ``convention``: ``corner`` (lmkzoo's),
    ``center`` (0-based pixel centres, +0.5) or ``pts`` (1-based, -0.5).
    Returns ``[(line_number, image, points (K, 2), visible (K,), box or None), ...]``; rows without points are
    skipped."""
    path = Path(path)
    shift = {"corner": 0.0, "center": 0.5, "pts": -0.5}
    if convention not in shift:
        raise DatasetFormatError(f"unknown coordinate convention {convention!r}; allowed {sorted(shift)}", path=path)
    rows = []
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise DatasetFormatError(f"cannot open ({e})", path=path) from None
    with f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        need = ["image"] + [f"{a}{i}" for i in range(num_points) for a in "xy"]
        missing = [c for c in need if c not in cols]
        if missing:
            raise DatasetFormatError(f"missing columns {missing[:6]}{'...' if len(missing) > 6 else ''}", path=path, line=1)
        has_box = all(c in cols for c in ("box_x0", "box_y0", "box_x1", "box_y1"))
        for ln, r in enumerate(reader, start=2):
            if "face_found" in r and r["face_found"].strip() in ("0", "", "false", "False"):
                continue
            vals = [r[f"{a}{i}"] for i in range(num_points) for a in "xy"]
            if all(v.strip() == "" for v in vals):
                continue
            try:
                pts = np.array([float(v) for v in vals], dtype=np.float64).reshape(num_points, 2) + shift[convention]
            except ValueError:
                bad = next(v for v in vals if not _is_float(v))
                raise DatasetFormatError(f"non-numeric coordinate {bad!r}", path=path, line=ln) from None
            if not np.all(np.isfinite(pts)):
                raise DatasetFormatError("non-finite coordinate", path=path, line=ln)
            vis = np.ones(num_points, bool)
            if "visible0" in r:
                vis = np.array([r[f"visible{i}"].strip() not in ("0", "false", "False") for i in range(num_points)])
            box = None
            if has_box and r["box_x0"].strip():
                box = np.array([float(r[c]) for c in ("box_x0", "box_y0", "box_x1", "box_y1")], dtype=np.float32)
            rows.append((ln, r["image"], pts.astype(np.float32), vis, box))
    return rows


def _is_float(v) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def pixel_index_box(x0, y0, x1, y1, *, base: int) -> np.ndarray:
    """A box given as inclusive pixel indices (first and last pixel, ``base``-based: 0 for C/OpenCV-style files, 1
    for MATLAB ones) in lmkzoo's corner convention: it spans ``[x0 - base, x1 - base + 1)``."""
    return np.array([x0 - base, y0 - base, x1 - base + 1, y1 - base + 1], np.float32)


def tight_box(points, visible=None) -> np.ndarray:
    p = np.asarray(points)
    if visible is not None and np.any(visible):
        p = p[np.asarray(visible, bool)]
    return np.concatenate([p.min(0), p.max(0)]).astype(np.float32)


def find_image(folder: Path, stem: str):
    """The image file ``folder/stem.<ext>`` for any known image suffix, or None."""
    for suf in IMAGE_SUFFIXES:
        p = folder / f"{stem}{suf}"
        if p.exists():
            return p
    return None


def read_count_points_txt(path, num_points: int) -> np.ndarray:
    """JD-landmark / LaPa ``<image>.txt``: line 1 is the point count, then one ``x y`` line per point.
    Returns the file's values ``(K, 2)`` float64 (no convention shift: the caller applies its dataset's)."""
    path = Path(path)
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(read_text_lines(path, "landmark file")) if ln.strip()]
    if not lines:
        raise DatasetFormatError("empty landmark file", path=path, line=1)
    ln0, first = lines[0]
    try:
        n = int(first)
    except ValueError:
        raise DatasetFormatError(f"line 1 must be the point count, got {first!r}", path=path, line=ln0) from None
    if n != num_points:
        raise DatasetFormatError(f"expected {num_points} points, the file declares {n}", path=path, line=ln0)
    body = lines[1:]
    if len(body) != n:
        raise DatasetFormatError(f"the file declares {n} points but {len(body)} point lines follow", path=path,
                                 line=body[-1][0] if body else ln0)
    pts = np.empty((n, 2), np.float64)
    for k, (ln, text) in enumerate(body):
        parts = text.replace(",", " ").split()
        if len(parts) != 2:
            raise DatasetFormatError(f"expected 'x y', got {text!r}", path=path, line=ln)
        pts[k] = parse_floats(parts, path=path, line=ln)
    return pts


def read_rect(path) -> np.ndarray:
    """A one-line box file (JD-landmark ``<image>.rect``: ``min_x min_y max_x max_y``) → ``(4,)`` float64."""
    path = Path(path)
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(read_text_lines(path, "box file")) if ln.strip()]
    if not lines:
        raise DatasetFormatError("empty box file", path=path, line=1)
    ln, text = lines[0]
    parts = text.replace(",", " ").split()
    if len(parts) != 4:
        raise DatasetFormatError(f"expected 'min_x min_y max_x max_y', got {text!r}", path=path, line=ln)
    box = parse_floats(parts, path=path, line=ln, what="box value")
    if box[2] < box[0] or box[3] < box[1]:
        raise DatasetFormatError(f"box {text!r} has max < min", path=path, line=ln)
    return box


WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")


def read_wflw_list(path, num_points: int = 98):
    """WFLW ``list_98pt_rect_attr_*.txt``: per line 2K coordinates, the box ``x_min y_min x_max y_max``, six 0/1
    attributes (:data:`WFLW_ATTRIBUTES`) and the image path. Returns ``[(line, points (K, 2), box (4,),
    attributes (6,) bool, image), ...]`` with the file's values (no convention shift)."""
    path = Path(path)
    n_cols = 2 * num_points + 4 + len(WFLW_ATTRIBUTES) + 1
    rows = []
    for i, text in enumerate(read_text_lines(path, "WFLW list")):
        ln = i + 1
        parts = text.split()
        if not parts:
            continue
        if len(parts) != n_cols:
            raise DatasetFormatError(f"expected {n_cols} columns ({num_points} points, box, 6 attributes, image), "
                                     f"got {len(parts)}", path=path, line=ln)
        vals = parse_floats(parts[: 2 * num_points + 4], path=path, line=ln)
        attrs = []
        for t in parts[2 * num_points + 4: -1]:
            if t not in ("0", "1"):
                raise DatasetFormatError(f"attribute flags must be 0 or 1, got {t!r}", path=path, line=ln)
            attrs.append(t == "1")
        rows.append((ln, vals[: 2 * num_points].reshape(num_points, 2), vals[2 * num_points:], np.array(attrs),
                     parts[-1]))
    if not rows:
        raise DatasetFormatError("no annotation lines", path=path)
    return rows
