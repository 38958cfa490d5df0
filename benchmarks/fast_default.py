"""The "fast by default" measurements (benchmarks/README.md, results/fast_default_*.json): lmkzoo's defaults against
MediaPipe FaceMesh on the same photos in the same run, cold start of the CLI, folder throughput, predict vs graph.

    python benchmarks/fast_default.py --out benchmarks/results/fast_default_after.json
    PYTHONPATH=/path/to/old/checkout python benchmarks/fast_default.py --label before --out ...   # another lmkzoo

What is timed (every configuration in a process of its own, LFW photos of 250x250 from shared/data/lfw_faces):

* ``per_photo``: median ms per photo, detector + crop + network + mapping back, over 60 photos decoded beforehand
  (3 rounds after a warm-up): ``lmkzoo.load()`` (the default), ``load(runtime="tflite")``, ``load(runtime="keras")``
  and MediaPipe 0.10.14 FaceMesh (``static_image_mode=True``: its face detector + 468-point mesh on every photo),
  which this script installs into a virtual environment of its own (``--mediapipe-venv``; never a dependency of
  lmkzoo);
* ``detector``: the built-in BlazeFace detector alone on the same photos;
* ``predict_vs_graph``: ``predict`` on one face with its box against the serving graph alone on its crop, calls
  interleaved;
* ``cold_start``: wall time of ``lmkzoo predict photo.jpg --out o.png`` (a new process each time, median of 5);
* ``folder``: wall time of ``lmkzoo predict FOLDER`` over 200 photos, start included (median of 3), and
  ``predict(list_of_200_images)`` in a warm process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LMKZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))
MEDIAPIPE = "mediapipe==0.10.14"


def photos(n: int, stride: int) -> list[str]:
    files = sorted(str(p) for p in (SHARED / "lfw_faces").rglob("*.jpg"))
    return files[::stride][:n]


# ------------------------------------------------------------------------------------------- workers (one process each)
def _decode(paths):
    from lmkzoo.image_io import read_image

    return [read_image(p) for p in paths]


def worker_per_photo(config: str, paths: list[str], rounds: int = 3) -> dict:
    import numpy as np

    import lmkzoo

    images = _decode(paths)
    if config == "tflite-int8":  # the default model quantized to int8 (calibrated on these photos' faces)
        path = Path(tempfile.gettempdir()) / f"lmkzoo-bench-{_commit()}-default-int8.tflite"
        if not path.exists():
            lmkzoo.load(runtime="keras").export(path, quantize="int8", representative_data=images, batch_size=None)
    t = time.perf_counter()
    if config == "tflite-int8":
        lm = lmkzoo.load(path)
    else:
        lm = lmkzoo.load() if config == "default" else lmkzoo.load(runtime=config)
    load_s = time.perf_counter() - t
    for img in images[:5]:
        lm.predict(img)
    times, faces = [], 0
    for _ in range(rounds):
        for img in images:
            t = time.perf_counter()
            out = lm.predict(img)
            times.append(time.perf_counter() - t)
            faces += len(out)
    return {"config": config, "runtime": lm.runtime, "median_ms": round(1e3 * float(np.median(times)), 3),
            "min_ms": round(1e3 * float(np.min(times)), 3),
            "iqr_ms": round(1e3 * float(np.subtract(*np.percentile(times, [75, 25]))), 3),
            "faces_per_photo": faces / (rounds * len(images)), "load_s": round(load_s, 3),
            "tensorflow_imported": "tensorflow" in sys.modules, "keras_imported": "keras" in sys.modules}


def worker_detector(paths: list[str], rounds: int = 3) -> dict:
    import numpy as np

    from lmkzoo.detection import default_detector

    images = _decode(paths)
    det = default_detector()
    for img in images[:5]:
        det(img)
    times = []
    for _ in range(rounds):
        for img in images:
            t = time.perf_counter()
            det(img)
            times.append(time.perf_counter() - t)
    out = {"median_ms": round(1e3 * float(np.median(times)), 3)}
    if hasattr(det, "profile"):
        out["stages_ms"] = det.profile(images, rounds=rounds)
    return out


def worker_predict_vs_graph(iters: int = 300) -> dict:

    import lmkzoo
    from lmkzoo.image_io import read_image

    img = read_image(lmkzoo.sample_image())
    lm = lmkzoo.load()
    box = lm.predict(img)[0].box
    crop = lm.crops(img, boxes=[box])[0]
    fns = {"graph": lambda: lm.runner(crop), "predict": lambda: lm.predict(img, boxes=[box])}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from profiles import _interleaved  # the same interleaved timer as the predict-overhead profile

    out = _interleaved(fns, iters, warmup=20)
    out["ratio"] = round(out["predict"] / out["graph"], 3)
    out["runtime"] = lm.runtime
    return out


def worker_batch(paths: list[str]) -> dict:
    import lmkzoo

    images = _decode(paths)
    lm = lmkzoo.load()
    lm.predict(images[:8])
    t = time.perf_counter()
    out = lm.predict(images)
    s = time.perf_counter() - t
    return {"images": len(images), "seconds": round(s, 3), "images_per_s": round(len(images) / s, 1),
            "faces": sum(len(f) for f in out)}


def _worker(argv) -> int:
    kind, args = argv[0], json.loads(argv[1])
    fn = {"per_photo": worker_per_photo, "detector": worker_detector, "predict_vs_graph": worker_predict_vs_graph,
          "batch": worker_batch}[kind]
    print("RESULT " + json.dumps(fn(**args)))
    return 0


def _run_worker(kind: str, python=sys.executable, script=None, **kwargs) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    r = subprocess.run([python, str(script or __file__), "--worker", kind, json.dumps(kwargs)], capture_output=True,
                       text=True, env=env, timeout=900)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode or not lines:
        raise RuntimeError(f"{kind} worker failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


# ------------------------------------------------------------------------------------------- MediaPipe
MEDIAPIPE_WORKER = r'''
import json, sys, time
import cv2, numpy as np
import mediapipe as mp
paths = json.loads(sys.argv[1]); rounds = int(sys.argv[2])
images = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in paths]
mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
for img in images[:5]:
    mesh.process(img)
times, faces = [], 0
for _ in range(rounds):
    for img in images:
        t = time.perf_counter()
        res = mesh.process(img)
        times.append(time.perf_counter() - t)
        faces += len(res.multi_face_landmarks or [])
print("RESULT " + json.dumps({"config": "mediapipe", "version": mp.__version__,
      "median_ms": round(1e3 * float(np.median(times)), 3), "min_ms": round(1e3 * float(np.min(times)), 3),
      "iqr_ms": round(1e3 * float(np.subtract(*np.percentile(times, [75, 25]))), 3),
      "faces_per_photo": faces / (rounds * len(images))}))
'''


def mediapipe_python(venv: Path) -> Path:
    """The Python of a virtual environment holding ``mediapipe==0.10.14`` (created and installed on first use)."""
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import mediapipe"], capture_output=True).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", MEDIAPIPE], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"cannot install {MEDIAPIPE} for Python {platform.python_version()} "
                           f"({platform.machine()}):\n{r.stderr[-2000:]}")
    return py


def run_mediapipe(venv: Path, paths, rounds: int = 3) -> dict:
    py = mediapipe_python(venv)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(MEDIAPIPE_WORKER)
    try:
        r = subprocess.run([str(py), f.name, json.dumps(paths), str(rounds)], capture_output=True, text=True, timeout=900)
    finally:
        os.unlink(f.name)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode or not lines:
        raise RuntimeError(f"MediaPipe worker failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


# ------------------------------------------------------------------------------------------- CLI timings
def _cli(args, env) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "lmkzoo.cli", *args], capture_output=True, text=True, env=env)
    s = time.perf_counter() - t
    if r.returncode not in (0, 1):
        raise RuntimeError(f"lmkzoo {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return s


def cold_start(photo: str, runs: int = 7) -> dict:
    env = {**os.environ, "LMKZOO_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        _cli(["predict", photo, "--out", f"{tmp}/o.png"], env)  # warm the file cache (and any export cache)
        times = [_cli(["predict", photo, "--out", f"{tmp}/o.png"], env) for _ in range(runs)]
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "runs_s": [round(t, 3) for t in times]}


def folder(paths, runs: int = 3) -> dict:
    env = {**os.environ, "LMKZOO_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(paths):
            shutil.copyfile(p, f"{tmp}/{i:04d}.jpg")
        _cli(["predict", tmp], env)
        times = [_cli(["predict", tmp], env) for _ in range(runs)]
    return {"images": len(paths), "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "runs_s": [round(t, 3) for t in times],
            "images_per_s": round(len(paths) / statistics.median(times), 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the JSON results here")
    ap.add_argument("--label", default="after", help="what this run measures (before / after)")
    ap.add_argument("--mediapipe-venv", default=str(Path.home() / ".cache" / "lmkzoo-bench" / "mediapipe-0.10.14"),
                    help="virtual environment for MediaPipe (created with mediapipe==0.10.14 when missing)")
    ap.add_argument("--no-mediapipe", action="store_true")
    ap.add_argument("--configs", default="default,tflite,keras,tflite-int8",
                    help="lmkzoo configurations for per_photo (tflite-int8: the default model quantized)")
    ap.add_argument("--skip", default="", help="comma list of sections to skip")
    ap.add_argument("--alternate", type=int, default=0, metavar="N",
                    help="also run MediaPipe and lmkzoo's default in turn N times (ratio per round, median ratio)")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return _worker(args.worker)
    skip = set(filter(None, args.skip.split(",")))
    p60, p200 = photos(60, 60), photos(200, 18)
    res = {"label": args.label, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                            "load_average_at_start": [round(v, 2) for v in os.getloadavg()]},
           "photos": {"per_photo": len(p60), "folder": len(p200), "source": "shared/data/lfw_faces, 250x250"}}
    import lmkzoo

    res["lmkzoo"] = {"path": str(Path(lmkzoo.__file__).parent), "commit": _commit()}
    if "per_photo" not in skip:
        res["per_photo"] = {}
        if not args.no_mediapipe:
            try:
                res["per_photo"]["mediapipe"] = run_mediapipe(Path(args.mediapipe_venv), p60)
            except RuntimeError as e:
                res["per_photo"]["mediapipe"] = {"error": str(e)}
        for c in args.configs.split(","):
            res["per_photo"][c] = _run_worker("per_photo", config=c, paths=p60)
        if not args.no_mediapipe and "error" not in res["per_photo"]["mediapipe"]:
            # MediaPipe again at the end, so that drifting machine load hits both sides alike; the reference is the
            # mean of its two medians
            res["per_photo"]["mediapipe_again"] = run_mediapipe(Path(args.mediapipe_venv), p60)
            res["per_photo"]["mediapipe_reference_ms"] = {"median_ms": round(
                (res["per_photo"]["mediapipe"]["median_ms"] + res["per_photo"]["mediapipe_again"]["median_ms"]) / 2, 3)}
        mp_ms = res["per_photo"].get("mediapipe_reference_ms", {}).get("median_ms")
        if mp_ms:
            for v in res["per_photo"].values():
                v["vs_mediapipe"] = round(v["median_ms"] / mp_ms, 2)
        print(json.dumps(res["per_photo"], indent=1), file=sys.stderr)
    if args.alternate:
        # lmkzoo's default and MediaPipe in turn, several times: drifting machine load (other processes) hits both
        res["alternating"] = {"rounds": [], "configs": ["mediapipe", "default"]}
        for _ in range(args.alternate):
            mp = run_mediapipe(Path(args.mediapipe_venv), p60)
            lz = _run_worker("per_photo", config="default", paths=p60)
            res["alternating"]["rounds"].append({"mediapipe_ms": mp["median_ms"], "default_ms": lz["median_ms"],
                                                 "ratio": round(lz["median_ms"] / mp["median_ms"], 3)})
        ratios = sorted(r["ratio"] for r in res["alternating"]["rounds"])
        res["alternating"]["median_ratio"] = ratios[len(ratios) // 2]
        print(json.dumps(res["alternating"], indent=1), file=sys.stderr)
    if "detector" not in skip:
        res["detector"] = _run_worker("detector", paths=p60)
    if "predict_vs_graph" not in skip:
        res["predict_vs_graph"] = _run_worker("predict_vs_graph")
    if "cold_start" not in skip:
        res["cold_start"] = cold_start(str(p60[0]))
    if "folder" not in skip:
        res["folder"] = folder(p200)
        res["batch"] = _run_worker("batch", paths=p200)
    text = json.dumps(res, indent=1)
    res["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    text = json.dumps(res, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def _commit() -> str | None:
    import lmkzoo

    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(lmkzoo.__file__).parent, capture_output=True,
                       text=True)
    return r.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
