"""The shared LFW faces with their 68-point teacher labels (``shared/data/lfw_faces``) as test and tool inputs.

``shared`` is the shared data folder (the one holding ``lfw_faces/``); ``rows`` are rows of its
``teacher68.csv`` (``file, ok, x0, y0, ..., x67, y67``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

__all__ = ["SHARED_DATA_HELP", "find_shared_data", "require_shared_data", "teacher_rows", "row_points", "load_faces",
           "examples", "face_image_folder"]

SHARED_DATA_HELP = (
    "set LMKZOO_SHARED_DATA to the shared data folder (the one holding lfw_faces/teacher68.csv, faces68_dlib/, "
    "ibug_300w/), e.g. `export LMKZOO_SHARED_DATA=/path/to/shared/data`, or put that folder at ../shared/data "
    "beside the lmkzoo checkout"
)


def find_shared_data() -> Path | None:
    """The shared data folder: ``$LMKZOO_SHARED_DATA``, else ``shared/data`` beside the checkout (the folder
    holding the repository); None when neither holds ``lfw_faces/teacher68.csv``."""
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    for c in (os.environ.get("LMKZOO_SHARED_DATA"), beside):
        if c and (Path(c) / "lfw_faces" / "teacher68.csv").exists():
            return Path(c)
    return None


def require_shared_data() -> Path:
    """:func:`find_shared_data`, or a ``FileNotFoundError`` that says where it looked and how to point at it."""
    found = find_shared_data()
    if found is None:
        env = os.environ.get("LMKZOO_SHARED_DATA")
        beside = Path(__file__).resolve().parents[3] / "shared" / "data"
        looked = [f"LMKZOO_SHARED_DATA={env}" if env else "LMKZOO_SHARED_DATA is not set", str(beside)]
        raise FileNotFoundError(f"the shared real-face data was not found (no lfw_faces/teacher68.csv in: "
                                f"{'; '.join(looked)}): {SHARED_DATA_HELP}")
    return found


def teacher_rows(shared) -> list[list[str]]:
    """The rows of ``lfw_faces/teacher68.csv`` whose face was labelled."""
    with open(Path(shared) / "lfw_faces" / "teacher68.csv") as f:
        return [r for r in list(csv.reader(f))[1:] if r[1] == "1"]


def row_points(row) -> np.ndarray:
    """The teacher points ``(68, 2)`` of one row."""
    return np.array([float(v) for v in row[2:]], np.float32).reshape(68, 2)


def load_faces(shared, rows):
    """RGB images ``(N, H, W, 3)`` uint8 and teacher points ``(N, 68, 2)`` of ``rows``."""
    from lmkzoo.image_io import read_image

    images = np.stack([read_image(Path(shared) / "lfw_faces" / r[0]) for r in rows])
    return images, np.stack([row_points(r) for r in rows])


def examples(images, pts):
    """A ``tf.data.Dataset`` of landmark examples ``{image, landmarks, visible, bbox}`` (the points' tight box)."""
    import tensorflow as tf

    from lmkzoo import geometry

    return tf.data.Dataset.from_tensor_slices({
        "image": images, "landmarks": pts, "visible": np.ones(pts.shape[:2], np.float32),
        "bbox": geometry.points_bbox(pts).astype(np.float32),
    })


def face_image_folder(shared, rows, folder) -> Path:
    """A ``face_image_folder`` manual dir of ``rows``' images (symbolic links) with ``boxes.csv`` holding the
    teacher points' tight boxes: unlabelled faces whose hidden labels are known."""
    from lmkzoo import geometry

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["image,x0,y0,x1,y1"]
    for r in rows:
        dst = folder / r[0]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            os.symlink(Path(shared) / "lfw_faces" / r[0], dst)
        b = geometry.points_bbox(row_points(r))
        lines.append(f"{r[0]},{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f}")
    (folder / "boxes.csv").write_text("\n".join(lines) + "\n")
    return folder
