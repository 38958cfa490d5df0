"""Fit the detector-box → tight-landmark-box calibrations of lmkzoo.detection on labelled faces.

For every face, the raw detector box nearest to the points' centroid (and containing it) is paired with the tight
box of the 68 points; the medians of the centre offset and size ratios (in units of the detector box side) are the
calibration. The faces are the 300-W training faces' human annotations (``--faces 300w``, the default: the
convention every 300-W model is trained and scored in; never the test faces) or the LFW teacher labels
(``--faces lfw``: MediaPipe points mapped to iBUG-68, the first calibration). Also reports each detector's recall
and time there and on faces68_dlib (a face counts as found when a detection's centre lies inside its tight landmark
box and the box sizes agree within 2x), and its false detections on faces68_dlib (every face there is annotated).

    python tools/calibrate_detector.py [--faces 300w|lfw] [SHARED_DATA [haar blazeface_full blazeface_short]]

SHARED_DATA defaults to $LMKZOO_SHARED_DATA, else ../shared/data beside the checkout.
"""

import csv
import sys
import time
from pathlib import Path

import numpy as np

from lmkzoo.detection import BlazeFaceDetector, HaarFaceDetector
from lmkzoo.geometry import from_pts_convention
from lmkzoo.image_io import read_image
from lmkzoo.testing.lfw import require_shared_data


def match(raw, tight):
    c = (tight[:2] + tight[2:]) / 2
    best = None
    for b in raw:
        if b[0] <= c[0] <= b[2] and b[1] <= c[1] <= b[3]:
            s = np.sqrt((b[2] - b[0]) * (b[3] - b[1]))
            ts = np.sqrt((tight[2] - tight[0]) * (tight[3] - tight[1]))
            if 0.5 < s / ts < 2.0:
                d = np.linalg.norm((b[:2] + b[2:]) / 2 - c)
                if best is None or d < best[0]:
                    best = (d, b)
    return None if best is None else best[1]


def raw_boxes(name):
    if name == "haar":
        det = HaarFaceDetector()
        return lambda img: det.raw(img)[0]
    blaze = BlazeFaceDetector(models=(name.split("_")[1],))
    return lambda img: blaze.raw(img, name.split("_")[1])[0]


def read_pts(path: Path) -> np.ndarray:
    """A 300-W ``.pts`` file's points in lmkzoo's corner convention."""
    lines = path.read_text().split("{")[1].split("}")[0].split()
    return from_pts_convention(np.array(lines, float).reshape(-1, 2))


def labelled_faces(shared: Path, faces: str):
    """``(image file, 68 points)`` of the calibration faces: the 300-W training folders (AFW, HELEN and LFPW
    ``trainset``), or the LFW faces the teacher found."""
    if faces == "300w":
        root = shared / "ibug_300w"
        for folder in (root / "afw", root / "helen" / "trainset", root / "lfpw" / "trainset"):
            for pts in sorted(folder.glob("*.pts")):
                yield pts.with_suffix(".jpg"), read_pts(pts)
        return
    with open(shared / "lfw_faces" / "teacher68.csv") as f:
        for r in csv.DictReader(f):
            if r["face_found"] == "1":
                pts = np.array([float(r[f"{a}{i}"]) for i in range(68) for a in "xy"]).reshape(68, 2)
                yield shared / "lfw_faces" / r["image"], pts


def main(shared, names=("haar", "blazeface_full", "blazeface_short"), faces="300w"):
    shared = Path(shared)
    for name in names:
        raw_fn = raw_boxes(name)
        ratios, found, total, seconds = [], 0, 0, 0.0
        for image_file, pts in labelled_faces(shared, faces):
            tight = np.concatenate([pts.min(0), pts.max(0)])
            img = read_image(image_file)
            t = time.perf_counter()
            raw = raw_fn(img)
            seconds += time.perf_counter() - t
            total += 1
            b = match(raw, tight)
            if b is None:
                continue
            found += 1
            s = np.sqrt((b[2] - b[0]) * (b[3] - b[1]))
            ratios.append([((tight[0] + tight[2]) - (b[0] + b[2])) / 2 / s, ((tight[1] + tight[3]) - (b[1] + b[3])) / 2 / s,
                           (tight[2] - tight[0]) / s, (tight[3] - tight[1]) / s])
        r = np.median(np.asarray(ratios), axis=0)
        print(f"{name}: {faces} recall {found}/{total} = {found / total:.3f}, {1000 * seconds / total:.2f} ms per image")
        print(f"  calibration = {{'dx': {r[0]:.4f}, 'dy': {r[1]:.4f}, 'sw': {r[2]:.4f}, 'sh': {r[3]:.4f}}}")
        print("  spread (IQR):", np.round(np.percentile(ratios, 75, axis=0) - np.percentile(ratios, 25, axis=0), 4))
        # recall on the in-the-wild dlib faces
        dl = shared / "faces68_dlib"
        found = total = false = 0
        with open(dl / "faces.csv") as f:
            rows = list(csv.DictReader(f))
        cache, tights = {}, {}
        for row in rows:
            if row["image"] not in cache:
                cache[row["image"]] = raw_fn(read_image(dl / row["image"]))
            pts = read_pts(dl / row["pts_file"])
            tight = np.concatenate([pts.min(0), pts.max(0)])
            tights.setdefault(row["image"], []).append(tight)
            total += 1
            found += match(cache[row["image"]], tight) is not None
        for image, raw in cache.items():
            false += sum(1 for b in raw if not any(match(b[None], t) is not None for t in tights[image]))
        print(f"  faces68_dlib recall {found}/{total} = {found / total:.3f}, {false} false detections")


if __name__ == "__main__":
    args = sys.argv[1:]
    faces = "300w"
    if args[:1] == ["--faces"]:
        if len(args) < 2 or args[1] not in ("300w", "lfw"):
            raise SystemExit("--faces takes 300w or lfw")
        faces, args = args[1], args[2:]
    main(args[0] if args else require_shared_data(), tuple(args[1:]) or ("haar", "blazeface_full", "blazeface_short"),
         faces=faces)
