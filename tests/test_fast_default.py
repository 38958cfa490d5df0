"""Fast by default: ``lmkzoo.load()`` predicts on LiteRT without importing TensorFlow or Keras, agrees with the Keras
and ONNX runtimes, builds and verifies its cached exports, is safe to call from many threads (every runtime and the
detector), finds small faces in large group photos, and the CLI stays quiet. Benchmarks, not timed tests:
benchmarks/fast_default.py."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import lmkzoo
from lmkzoo import geometry
from lmkzoo.detection import BlazeFaceDetector, default_detector
from lmkzoo.export import cache
from lmkzoo.export.metadata import read_metadata
from lmkzoo.image_io import read_image
from lmkzoo.testing.lfw import load_faces, teacher_rows

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=timeout)


@pytest.fixture(scope="module")
def photos(shared_data):
    images, pts = load_faces(shared_data, teacher_rows(shared_data)[::300][:6])
    return [read_image(lmkzoo.sample_image()), *images], pts


# ------------------------------------------------------------------------------------------- no TensorFlow
def test_default_load_and_predict_import_neither_tensorflow_nor_keras():
    code = ("import sys, lmkzoo\n"
            "lm = lmkzoo.load()\n"
            "faces = lm.predict(lmkzoo.sample_image())\n"
            "faces += lmkzoo.load('pipnet_lite').predict([lmkzoo.sample_image()] * 2)[0]\n"
            "print(lm.runtime, len(faces), 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
            "lm.network\n"  # built on first access: now Keras is there
            "print('keras' in sys.modules)\n")
    r = _python(code, env={"LMKZOO_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    first, second = r.stdout.split("\n")[:2]
    assert first == "tflite 2 False False", r.stdout
    assert second == "True"


def test_cli_predict_list_info_help_without_tensorflow(tmp_path):
    code = ("import sys, lmkzoo.cli as c\n"
            f"rc = [c.main(['predict', {str(lmkzoo.sample_image())!r}, '--out', {str(tmp_path / 'o.png')!r}, '--json']),\n"
            "      c.main(['list']), c.main(['info', 'pipnet_lite'])]\n"
            "try:\n"
            "    c.main(['predict', '--help'])\n"
            "except SystemExit as e:\n"
            "    rc.append(e.code)\n"
            "print('RESULT', rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    r = _python(code, env={"LMKZOO_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RESULT [0, 0, 0, 0] False False" in r.stdout
    assert (tmp_path / "o.png").is_file()


def test_cli_stderr_is_quiet_unless_verbose(tmp_path):
    args = [sys.executable, "-m", "lmkzoo.cli", "predict", str(lmkzoo.sample_image()), "--out", str(tmp_path / "o.png")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LMKZOO_OFFLINE": "1"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    quiet = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = subprocess.run(args + ["--verbose"], capture_output=True, text=True, env=env, timeout=300)
    assert loud.returncode == 0 and "XNNPACK" in loud.stderr
    # lmkzoo's own messages still reach stderr
    bad = subprocess.run(args[:4] + [str(tmp_path / "missing.jpg")], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "image file not found" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------------- defaults and the network
def test_default_runs_the_packaged_litert_form_and_builds_the_network_lazily(photos):
    lm = lmkzoo.load()
    spec = lm.spec
    assert lm.runtime == "tflite" and lm.runner.path == cache.packaged_litert(spec)
    assert lm._network is None  # nothing built yet
    assert read_metadata(lm.runner.path)["zoo_spec"]["weights"]["sha256"] == spec.weights.sha256
    net = lm.network
    assert net is lm.network and net.num_points == 68  # built once
    crops, maps = lm.heatmaps(photos[0][0])  # the Keras-only views work from a LiteRT Landmarker
    assert maps.shape[0] == len(crops) == 1
    assert lmkzoo.load(runtime="keras").runtime == "keras"
    assert lmkzoo.load("pipnet_lite", weights=None).runtime == "keras"  # random weights: no LiteRT form


@pytest.mark.slow
def test_runtimes_agree_within_float32_tolerance(photos):
    images, pts = photos
    boxes = [[geometry.points_bbox(p)] for p in pts]
    ref = lmkzoo.load(runtime="keras").predict(images[1:], boxes=boxes)
    for runtime in ("auto", "tflite", "onnx"):
        out = lmkzoo.load(runtime=runtime).predict(images[1:], boxes=boxes)
        for a, b in zip(out, ref):
            assert np.abs(a[0].points - b[0].points).max() < 2e-3, runtime  # pixels
            assert np.allclose(a[0].scores, b[0].scores, atol=1e-4), runtime
    # the whole predict path, detector included
    for img in images[:3]:
        a, b = lmkzoo.load().predict(img), lmkzoo.load(runtime="keras").predict(img)
        assert len(a) == len(b) and np.abs(a[0].points - b[0].points).max() < 2e-3


def test_export_for_phones_by_default(tmp_path):
    lm = lmkzoo.load(runtime="keras")
    crops = lm.crops(read_image(lmkzoo.sample_image()))[0]
    fixed = lm.export(tmp_path / "phone.tflite")
    dynamic = lm.export(tmp_path / "server.tflite", batch_size=None)
    assert read_metadata(fixed)["batch_size"] == 1 and read_metadata(dynamic)["batch_size"] is None
    a, b = lmkzoo.load(fixed), lmkzoo.load(dynamic)
    assert a.runner.batch_size == 1 and b.runner.batch_size is None
    both = np.concatenate([crops, crops[:, ::-1]])
    assert np.allclose(a.runner(both)["landmarks"], b.runner(both)["landmarks"], atol=1e-4)
    with pytest.raises(lmkzoo.errors.InvalidArgumentError, match="batch_size"):
        lm.export(tmp_path / "x.tflite", batch_size="dynamic")


# ------------------------------------------------------------------------------------------- the export cache
def _no_packaged(monkeypatch):
    monkeypatch.setattr(cache, "packaged_litert", lambda spec: None)


@pytest.mark.slow
def test_cache_is_built_once_verified_and_rebuilt_when_damaged(monkeypatch, tmp_path, photos):
    monkeypatch.setenv("LMKZOO_HOME", str(tmp_path))
    _no_packaged(monkeypatch)
    img = photos[0][0]
    ref = lmkzoo.load(runtime="keras").predict(img)[0].points
    lm = lmkzoo.load()
    path = lm.runner.path
    assert path.parent == tmp_path / "exports" and path.is_file() and cache._valid(path)
    assert np.abs(lm.predict(img)[0].points - ref).max() < 2e-3
    size, mtime = path.stat().st_size, path.stat().st_mtime_ns
    assert lmkzoo.load().runner.path == path and path.stat().st_mtime_ns == mtime  # found, not rebuilt

    def damaged(how):
        data = path.read_bytes()
        if how == "truncated":
            path.write_bytes(data[: len(data) // 3])
        elif how == "flipped":  # same size, one weight byte changed: LiteRT would load it and answer wrongly
            path.write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
        elif how == "no record":
            path.with_name(path.name + ".sha256").unlink()
        elif how == "empty":
            path.write_bytes(b"")
        return lmkzoo.load()

    for how in ("truncated", "flipped", "no record", "empty"):
        again = damaged(how)
        assert again.runner.path == path and cache._valid(path) and path.stat().st_size == size, how
        assert np.abs(again.predict(img)[0].points - ref).max() < 2e-3, how
    assert not list(path.parent.glob(".*.tflite")), "no temporary file left behind"


@pytest.mark.slow
def test_concurrent_processes_share_one_cache_build(tmp_path):
    code = ("import sys, lmkzoo\n"
            "from lmkzoo.export import cache\n"
            "cache.packaged_litert = lambda spec: None\n"
            "lm = lmkzoo.load()\n"
            "print('RESULT', lm.runtime, lm.runner.path, len(lm.predict(lmkzoo.sample_image())))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LMKZOO_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    lines = [next(ln for ln in out.splitlines() if ln.startswith("RESULT")) for out, _ in outs]
    assert lines[0] == lines[1] and lines[0].endswith(" 1") and " tflite " in lines[0]
    exports = sorted(p.name for p in (tmp_path / "exports").iterdir())
    assert len([n for n in exports if n.endswith(".tflite")]) == 1 and all(not n.startswith(".") for n in exports)
    assert cache._valid(tmp_path / "exports" / exports[0])


# ------------------------------------------------------------------------------------------- threads
def _hammer(fn, inputs, threads: int = 8, calls: int = 25):
    """``fn`` over ``inputs`` from ``threads`` threads, ``calls`` calls each (starting together); results by input."""
    barrier = threading.Barrier(threads)
    results, errors = [[] for _ in inputs], []

    def work(t):
        barrier.wait()
        for c in range(calls):
            i = (t + c) % len(inputs)
            try:
                results[i].append(fn(inputs[i]))
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    assert sum(len(r) for r in results) == threads * calls
    return results


def _points(faces):
    return np.stack([f.points for f in faces]) if faces else np.zeros((0, 68, 2))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["tflite", "onnx", "keras"])
def test_every_runtime_is_thread_safe(runtime, photos):
    """8 threads x 25 calls of ``predict`` (detector included) on one Landmarker equal the serial calls."""
    images = photos[0]
    lm = lmkzoo.load(runtime=runtime)
    serial = [_points(lm.predict(img)) for img in images]
    results = _hammer(lambda img: _points(lm.predict(img)), images)
    for ref, got in zip(serial, results):
        for g in got:
            assert g.shape == ref.shape and np.abs(g - ref).max() < 1e-4, runtime


def test_detector_is_thread_safe_and_shared(photos):
    images = photos[0]
    det = default_detector()
    serial = [det(img).boxes for img in images]
    for got, ref in zip(_hammer(lambda img: det(img).boxes, images), serial):
        assert all(g.shape == ref.shape and np.allclose(g, ref, atol=1e-3) for g in got)
    # several Landmarkers share the one default detector
    a, b = lmkzoo.load(), lmkzoo.load("pipnet_lite")
    a.predict(images[0]), b.predict(images[0])
    assert a._detector is b._detector is det


# ------------------------------------------------------------------------------------------- small faces, big photos
def _group_photo(images, pts, width, height, cols, rows, face):
    """LFW faces of ``face`` px pasted on a grid: (image, true face centres)."""
    import cv2

    canvas = np.full((height, width, 3), 200, np.uint8)
    cw, ch = width // cols, height // rows
    half = min(cw, ch) // 2
    centres = []
    for k in range(cols * rows):
        img, p = images[k % len(images)], pts[k % len(pts)]
        lo, hi = p.min(0), p.max(0)
        s = face / (hi - lo).max()
        small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        cx, cy = ((lo + hi) / 2 * s).astype(int)
        x, y = (k % cols) * cw + cw // 2, (k // cols) * ch + ch // 2
        sx, sy = max(cx - half, 0), max(cy - half, 0)
        patch = small[sy:cy + half, sx:cx + half]
        canvas[y - (cy - sy):y - (cy - sy) + patch.shape[0], x - (cx - sx):x - (cx - sx) + patch.shape[1]] = patch
        centres.append((x, y))
    return canvas, np.array(centres, float)


def _found(dets, centres, face):
    c = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
    return sum(1 for t in centres if len(c) and np.abs(c - t).max(1).min() < face / 2)


@pytest.mark.slow
def test_small_faces_in_a_large_group_photo(shared_data):
    images, pts = load_faces(shared_data, teacher_rows(shared_data)[::20][:60])
    det = BlazeFaceDetector()
    whole = BlazeFaceDetector(("full", "short"))  # the whole image only, as before tiling
    photo, centres = _group_photo(images, pts, 1080, 800, 6, 5, 70)
    assert _found(whole(photo), centres, 70) < 10  # 70 px faces are 12 px at the full-range model's input
    d = det(photo)
    assert _found(d, centres, 70) == 30 and len(d) <= 31
    photo, centres = _group_photo(images, pts, 1600, 1200, 12, 9, 40)
    found = _found(det(photo), centres, 40)
    print(f"\n  40 px faces in a 1600x1200 photo: {found} of {len(centres)}")
    assert found >= 0.9 * len(centres)


def test_tiles_cover_large_images_only():
    det = BlazeFaceDetector()
    assert det.tiles(500, 375) == [] and det.tiles(576, 400) == []
    for w, h in ((1080, 800), (4000, 3000), (3000, 700)):
        tiles = det.tiles(w, h)
        assert tiles and all(0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h for x0, y0, x1, y1 in tiles)
        first = [t for t in tiles if t[2] - t[0] == tiles[0][2] - tiles[0][0]]
        covered = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in first:
            covered[y0:y1, x0:x1] = True
        assert covered.all(), (w, h)  # the finest level covers the image
    assert BlazeFaceDetector(min_face_size=None).tiles(4000, 3000) == []
    with pytest.raises(lmkzoo.errors.InvalidArgumentError, match="min_face_size"):
        BlazeFaceDetector(min_face_size=0)


def test_cli_folder_json(tmp_path, photos):
    import cv2

    folder = tmp_path / "in"
    folder.mkdir()
    for i, img in enumerate(photos[0]):
        cv2.imwrite(str(folder / f"{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    r = subprocess.run([sys.executable, "-m", "lmkzoo.cli", "predict", str(folder), "--json"], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert [Path(x["image"]).name for x in res] == [f"{i}.jpg" for i in range(len(photos[0]))]
    lm = lmkzoo.load()
    for x in res:
        ref = lm.predict(read_image(folder / Path(x["image"]).name))
        assert len(x["faces"]) == len(ref)
        assert np.abs(np.array(x["faces"][0]["points"]) - ref[0].points).max() < 2e-3
