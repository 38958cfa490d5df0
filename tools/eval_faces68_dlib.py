"""NME of a 68-point model on shared/data/faces68_dlib (43 faces, dlib-predictor reference points).

Two protocols:
* oracle: the crop comes from the tight box of the reference points (the 300-W evaluation protocol);
* detector: the path `Landmarker.predict` uses (built-in detector → calibrated face box → crop); a reference
  face is matched by the detection whose box centre lies inside its tight box; missed faces are counted.
NME is normalised by the inter-ocular distance (points 36, 45), in percent.

    python tools/eval_faces68_dlib.py MODEL [--weights FILE] [--flip]
"""

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

import lmkzoo
from lmkzoo import metrics
from lmkzoo.geometry import from_pts_convention
from lmkzoo.image_io import read_image
from lmkzoo.testing.lfw import require_shared_data


def load_faces(folder):
    folder = Path(folder)
    faces = {}
    with open(folder / "faces.csv") as f:
        for row in csv.DictReader(f):
            lines = (folder / row["pts_file"]).read_text().split("{")[1].split("}")[0].split()
            pts = from_pts_convention(np.array(lines, float).reshape(-1, 2))
            faces.setdefault(row["image"], []).append(pts)
    return {name: (read_image(folder / name), pts) for name, pts in faces.items()}


def evaluate(lm, faces, flip_test=False):
    res = {}
    # oracle boxes
    preds, gts = [], []
    for _name, (img, pts) in faces.items():
        boxes = [np.concatenate([p.min(0), p.max(0)]) for p in pts]
        out = lm.predict(img, boxes=boxes, flip_test=flip_test)
        preds += [o.points for o in out]
        gts += pts
    nme = metrics.nme(np.stack(preds), np.stack(gts), scheme="ibug68")
    res["oracle"] = {"nme_percent": float(100 * nme.mean()), "median_percent": float(100 * np.median(nme)), "faces": len(nme),
                     "fr_0.10": metrics.failure_rate(nme, 0.10)}
    # detector path
    preds, gts, missed = [], [], 0
    t0 = time.perf_counter()
    for _name, (img, pts) in faces.items():
        out = lm.predict(img, flip_test=flip_test)
        for p in pts:
            lo, hi = p.min(0), p.max(0)
            cand = [o for o in out if lo[0] <= (o.box[0] + o.box[2]) / 2 <= hi[0] and lo[1] <= (o.box[1] + o.box[3]) / 2 <= hi[1]]
            if not cand:
                missed += 1
                continue
            best = min(cand, key=lambda o: np.abs(o.points - p).mean())
            preds.append(best.points)
            gts.append(p)
    dt = time.perf_counter() - t0
    nme = metrics.nme(np.stack(preds), np.stack(gts), scheme="ibug68")
    res["detector"] = {"nme_percent": float(100 * nme.mean()), "median_percent": float(100 * np.median(nme)),
                       "faces_found": len(nme), "faces_missed": missed, "seconds_per_image": dt / len(faces)}
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--weights", default="pretrained")
    ap.add_argument("--data", default=None,
                    help="the faces68_dlib folder (default: faces68_dlib/ in the shared data folder, see LMKZOO_SHARED_DATA)")
    ap.add_argument("--flip", action="store_true")
    args = ap.parse_args()
    lm = lmkzoo.load(args.model) if args.model.endswith(".keras") else lmkzoo.load(args.model, weights=args.weights)
    print(json.dumps(evaluate(lm, load_faces(args.data or require_shared_data() / "faces68_dlib"), args.flip), indent=2))


if __name__ == "__main__":
    main()
