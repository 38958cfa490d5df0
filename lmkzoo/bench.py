"""``lmkzoo bench``: speed, size and compute of zoo models on every runtime, against this machine's FLOP roofline.

For each model and thread count (each thread count runs in its own process, so numpy, TensorFlow, LiteRT, ONNX
Runtime and PyTorch all start with that many threads):

* ``params``, ``gmacs`` (multiply-adds, what papers print as "GFLOPs"), file size per exported format;
* per runtime (``keras``: the serving graph as one compiled ``tf.function``; ``tflite``: LiteRT + XNNPACK, float32
  or quantized; ``onnx``: ONNX Runtime) and batch: the median and spread (IQR) of warm calls of (a) the raw
  serving graph, and for batch 1 (b) ``Landmarker.predict`` on one face with its box (cut the crop, run the
  graph, decode, map back to the image) and (b') the same with the built-in face detector on a 250x250 photo;
  plus the decode's share of the graph (the graph without the decode timed the same way);
* (c) the tf.data training pipeline of the model's recipe (images/s) and (d) one training step (images/s);
* the machine's peak: float32 GEMM GFLOP/s through numpy on the same threads, and per model the roofline latency
  ``2 · MACs · batch / peak`` and the ratio measured / roofline;
* PIPNet models with a ResNet-18 backbone: an eager PyTorch implementation (``lmkzoo.testing.torch_pipnet``,
  CPU, same input, same threads) and the ratio lmkzoo / PyTorch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["run_bench", "measure", "gemm_peak_gflops", "format_markdown"]

RUNTIMES = ("keras", "tflite", "onnx")
QUANTIZE = ("float16", "dynamic", "int8")


def _timeit(fn, *, warmup: int, iters: int) -> dict:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ms = 1000 * np.asarray(ts)
    q1, q3 = np.percentile(ms, [25, 75])
    return {"median_ms": round(float(np.median(ms)), 4), "iqr_ms": round(float(q3 - q1), 4),
            "min_ms": round(float(ms.min()), 4), "runs": iters}


def gemm_peak_gflops(n: int = 1024, repeats: int = 20) -> float:
    """Best float32 GEMM throughput of numpy's BLAS on this process' threads (GFLOP/s, 2·n³ per product)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    for _ in range(3):
        a @ b
    best = min(_once(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _photo(size=250):
    """A real face photo: a 250x250 LFW-style crop of the bundled portrait (the detector path's input)."""
    import cv2

    from lmkzoo.image_io import read_image
    from lmkzoo.samples import sample_image

    img = read_image(sample_image())
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _spec_for(name: str, size: int | None):
    from lmkzoo.registry import get_spec

    spec = get_spec(name)
    if size:
        spec = dataclasses.replace(spec, input={**spec.input, "size": [size, size]})
    return spec


def measure(name: str, *, runtimes=("keras", "tflite"), quantize=(), batches=(1,), warmup: int = 10, iters: int = 50,
            size: int | None = None, pipeline: bool = True, train_step: bool = True, torch_ref: bool = True,
            threads: int = 1, peak: float | None = None, detector: bool = True) -> dict:
    """All measurements of one model in this process (call it from a process started with ``threads`` threads)."""
    import keras

    from lmkzoo.flops import count_macs
    from lmkzoo.inference.landmarker import Landmarker
    from lmkzoo.inference.loader import build_network

    spec = _spec_for(name, size)
    keras.utils.set_random_seed(0)
    weights = "pretrained" if spec.has_weights and not size else None
    if weights:
        from lmkzoo.inference.loader import load

        lm = load(spec.name, runtime="keras")
        network = lm.network
    else:
        network = build_network(spec)
        lm = Landmarker(spec, network)
    macs = count_macs(network)
    w, h = spec.input_size
    photo = _photo()
    box = np.array([60.0, 50.0, 190.0, 200.0])
    if spec.crop.get("policy", "box") != "box":  # aligned families: the face's five points from the default model
        from lmkzoo.inference.loader import load as _load

        helper = _load()
        five = helper.scheme.five_points(helper.predict(photo)[0].points)
        face_kw = {"five_points": [five]}
    else:
        face_kw = {"boxes": [box]}
    out = {"model": spec.name, "family": spec.family, "input": [w, h], "threads": threads, "weights": weights or "random",
           "params": int(macs.params), "gmacs": round(macs.gmacs, 4), "size_mb_float32": round(macs.size_mb, 3),
           "runtimes": {}, "files_mb": {}}
    if peak:
        out["peak_gflops"] = round(peak, 1)
    rng = np.random.default_rng(0)
    crops_all = {b: rng.integers(0, 255, (b, h, w, 3), dtype=np.uint8) for b in batches}
    with tempfile.TemporaryDirectory(prefix="lmkzoo-bench-") as tmp:
        variants = []
        for rt in runtimes:
            if rt not in RUNTIMES or rt == "auto":
                raise InvalidArgumentError(f"runtime must be one of {[r for r in RUNTIMES if r != 'auto']}; got {rt!r}")
            variants.append((rt, None))
            if rt == "tflite":
                variants += [(rt, q) for q in quantize]
        for rt, q in variants:
            key = rt if q is None else f"{rt}-{q}"
            if rt == "keras":
                run_lm = lm
                raw = Landmarker(spec, network, runner=_KerasRaw(lm, network))
            else:
                from lmkzoo.inference.loader import load_exported

                kw = {}
                if q == "int8":
                    kw["representative_data"] = _calibration_crops(lm)
                path = lm.export(Path(tmp) / f"{key}.{rt}", format=rt, quantize=q, batch_size=None, **kw)
                out["files_mb"][key] = round(path.stat().st_size / 1e6, 3)
                run_lm = load_exported(path, num_threads=threads)
                raw_path = _export_raw(lm, Path(tmp) / f"{key}-raw.{rt}", rt, q, kw)
                raw = Landmarker(spec, None, runner=_raw_runner(raw_path, rt, threads))
            res = {}
            for b in batches:
                crops = crops_all[b]
                g = _timeit(lambda: run_lm.runner(crops), warmup=warmup, iters=iters)
                r = _timeit(lambda: raw.runner(crops), warmup=warmup, iters=iters)
                entry = {"graph": g, "graph_without_decode": r,
                         "decode_share": round(max(0.0, 1 - r["median_ms"] / g["median_ms"]), 4),
                         "images_per_s": round(1000 * b / g["median_ms"], 1)}
                if peak:
                    roof = 2 * macs.macs * b / (peak * 1e9) * 1000
                    entry["roofline_ms"] = round(roof, 4)
                    entry["vs_roofline"] = round(g["median_ms"] / roof, 3)
                res[f"batch{b}"] = entry
            p = _timeit(lambda: run_lm.predict(photo, **face_kw), warmup=warmup, iters=iters)
            res["predict_one_face"] = p
            res["predict_vs_graph"] = round(p["median_ms"] / res["batch1"]["graph"]["median_ms"], 3) if "batch1" in res else None
            if detector:
                from lmkzoo.detection import default_detector

                det = default_detector()
                d = _timeit(lambda: det(photo), warmup=warmup, iters=iters)
                e2e = _timeit(lambda: run_lm.predict(photo), warmup=warmup, iters=iters)
                res["detector_250px"] = d
                res["predict_with_detector_250px"] = e2e
            out["runtimes"][key] = res
    if pipeline:
        out["pipeline"] = _pipeline_rate(spec, network)
    if train_step:
        out["train_step"] = _train_step_rate(spec, batch=16, warmup=2, iters=max(3, iters // 10))
    if torch_ref and spec.family == "pipnet" and spec.builder.get("backbone") == "resnet18" \
            and not spec.builder.get("backbone_args"):
        out["pytorch_eager"] = _torch_rate(spec, batches, threads, warmup, iters)
    return out


class _KerasRaw:
    """The Keras serving graph without the decode, compiled the same way as the runner."""

    runtime = "keras"

    def __init__(self, lm, network):
        import tensorflow as tf

        from lmkzoo.export.serving import build_serving_model

        m = build_serving_model(network, mean=lm.spec.mean, std=lm.spec.std, decode=False)
        spec = tf.TensorSpec([None, *m.inputs[0].shape[1:]], tf.uint8)
        self._fn = tf.function(lambda x: m(x, training=False), input_signature=[spec], reduce_retracing=True)

    def __call__(self, crops):
        return {k: v.numpy() for k, v in self._fn(crops).items()}


def _export_raw(lm, path, rt, q, kw):
    """The serving graph without its decode, exported like the full one (for the decode's share)."""
    from lmkzoo.export import convert
    from lmkzoo.export.serving import build_serving_model

    raw = build_serving_model(lm.network, mean=lm.spec.mean, std=lm.spec.std, decode=False)
    meta = {"format": "lmkzoo-bench-raw"}
    if rt == "onnx":
        return convert.export_onnx(raw, path, metadata=meta)
    rep = kw.get("representative_data")
    return convert.export_tflite(raw, path, metadata=meta, quantize=q, representative=rep)


def _raw_runner(path, rt, threads):
    from lmkzoo.runtimes import ONNXRunner, TFLiteRunner

    return TFLiteRunner(path, num_threads=threads) if rt == "tflite" else ONNXRunner(path, num_threads=threads)


def _calibration_crops(lm):
    """int8 calibration crops: the bundled photo's face, jittered (no dataset needed)."""
    import cv2

    photo = _photo()
    crops, _ = lm.crops(photo)
    base = crops if len(crops) else lm.crops(photo, detector=None)[0]
    rng = np.random.default_rng(0)
    out = []
    for _i in range(32):
        c = base[0].astype(np.float32) * rng.uniform(0.7, 1.3) + rng.normal(0, 8, base[0].shape)
        m = cv2.getRotationMatrix2D((c.shape[1] / 2, c.shape[0] / 2), rng.uniform(-15, 15), rng.uniform(0.9, 1.1))
        out.append(np.clip(cv2.warpAffine(c, m, c.shape[1::-1]), 0, 255).astype(np.uint8))
    return np.stack(out)


def _pipeline_rate(spec, network, batch: int = 16, batches: int = 30) -> dict:
    """Images/s of the recipe's tf.data training pipeline (crop, augment, encode, batch) on real LFW faces decoded
    beforehand (benchmarks/pipeline_throughput.py times the path from the encoded TFDS records)."""
    from lmkzoo import schemes
    from lmkzoo.data.pipeline import make_dataset
    from lmkzoo.testing.lfw import examples, find_shared_data, load_faces, teacher_rows

    shared = find_shared_data()
    if shared is None:
        return {"skipped": "shared LFW faces not found (set LMKZOO_SHARED_DATA)"}
    if schemes.get(spec.scheme).num_points != 68:
        return {"skipped": f"the shared faces have 68 points; {spec.name} uses {spec.scheme}"}
    rows = teacher_rows(shared)[:256]
    src = examples(*load_faces(shared, rows))
    ds = make_dataset(src, crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean, std=spec.std,
                      codec=network.codec, training=True, batch_size=batch, augment=spec.recipe.get("augment"),
                      epochs=2 + (batches + 3) // max(1, len(rows) // batch))
    it = iter(ds)
    for _ in range(3):
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return {"images_per_s": round(batches * batch / (time.perf_counter() - t), 1), "batch": batch,
            "augment": spec.recipe.get("augment")}


def _train_step_rate(spec, *, batch: int, warmup: int, iters: int) -> dict:
    """Images/s of one optimizer step of the recipe's loss (Keras ``fit`` on a fixed batch)."""
    import keras
    import tensorflow as tf

    from lmkzoo import schemes
    from lmkzoo.families.base import get_family
    from lmkzoo.inference.loader import build_network
    from lmkzoo.training.optimizers import build_optimizer

    net = build_network(spec)
    fam = get_family(spec.family)
    if spec.recipe.get("adversarial"):
        return {"skipped": "adversarial recipe (two networks): not a single Keras step"}
    net.compile(optimizer=build_optimizer(spec.recipe, 10), loss=fam.default_loss(spec, net))
    w, h = spec.input_size
    k = schemes.get(spec.scheme).num_points
    rng = np.random.default_rng(0)
    pts = (rng.uniform(0.2, 0.8, (batch, k, 2)) * np.array([w, h])).astype(np.float32)
    y = net.codec.encode(tf.constant(pts), tf.ones((batch, k)))
    x = tf.constant(rng.normal(0, 1, (batch, h, w, 3)).astype(np.float32))
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    net.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
    t = time.perf_counter()
    net.fit(ds, steps_per_epoch=iters, epochs=1, verbose=0)
    del keras
    return {"images_per_s": round(iters * batch / (time.perf_counter() - t), 1), "batch": batch}


def _torch_rate(spec, batches, threads, warmup, iters) -> dict:
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed (pip install 'lmkzoo[torch]')"}
    from lmkzoo import schemes
    from lmkzoo.testing.torch_pipnet import PipResNet18

    torch.set_num_threads(int(threads))
    net = PipResNet18(schemes.get(spec.scheme).num_points, int(spec.builder.get("num_neighbors", 10)),
                      int(spec.builder.get("net_stride", 32))).eval()
    w, h = spec.input_size
    out = {"torch": torch.__version__}
    for b in batches:
        x = torch.randn(b, 3, h, w)
        with torch.inference_mode():
            out[f"batch{b}"] = _timeit(lambda: net(x), warmup=warmup, iters=iters)
    return out


# ---------------------------------------------------------------------------------------------- processes
def _worker(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    cfg = json.loads(Path(args.config).read_text())
    threads = int(cfg["threads"])
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import cv2

    cv2.setNumThreads(threads)
    os.environ["LMKZOO_NUM_THREADS"] = str(threads)
    peak = gemm_peak_gflops()
    results = [measure(name, threads=threads, peak=peak, **cfg["options"]) for name in cfg["names"]]
    Path(args.out).write_text(json.dumps({"threads": threads, "peak_gflops": round(peak, 1), "models": results}))
    return 0


def run_bench(names, *, threads=(1, 2), runtimes=("keras", "tflite"), quantize=(), batches=(1,), warmup: int = 10,
              iters: int = 50, size: int | None = None, pipeline: bool = True, train_step: bool = True,
              torch_ref: bool = True, detector: bool = True) -> dict:
    """Benchmark zoo models; each thread count runs in a fresh process. Returns the merged results."""
    from lmkzoo import __version__
    from lmkzoo.registry import get_spec

    names = [get_spec(n).name for n in names]  # fail fast on unknown names
    runs = []
    for t in threads:
        if int(t) < 1:
            raise InvalidArgumentError(f"threads must be positive; got {t}")
        with tempfile.TemporaryDirectory(prefix="lmkzoo-bench-") as tmp:
            cfg = {"threads": int(t), "names": names, "options": dict(
                runtimes=list(runtimes), quantize=list(quantize), batches=list(batches), warmup=warmup, iters=iters,
                size=size, pipeline=pipeline, train_step=train_step, torch_ref=torch_ref, detector=detector)}
            Path(tmp, "config.json").write_text(json.dumps(cfg))
            env = {**os.environ, "OMP_NUM_THREADS": str(t), "OPENBLAS_NUM_THREADS": str(t), "MKL_NUM_THREADS": str(t),
                   "TF_NUM_INTRAOP_THREADS": str(t), "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
            proc = subprocess.run([sys.executable, "-m", "lmkzoo.bench", "--config", str(Path(tmp, "config.json")),
                                   "--out", str(Path(tmp, "out.json"))], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"benchmark worker ({t} threads) failed:\n{proc.stderr[-3000:]}")
            runs.append(json.loads(Path(tmp, "out.json").read_text()))
    import platform

    machine = {"cpu_count": os.cpu_count(), "processor": _cpu_name(), "python": platform.python_version(),
               "lmkzoo": __version__, "load_avg_1m": round(os.getloadavg()[0], 2)}
    return {"machine": machine, "runs": runs}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def format_markdown(result: dict) -> str:
    """Tables of a :func:`run_bench` result."""
    m = result["machine"]
    lines = [f"Machine: {m['processor']}, {m['cpu_count']} cores visible, Python {m['python']}, lmkzoo {m['lmkzoo']} "
             f"(1-min load average {m['load_avg_1m']} at the end of the run).", ""]
    for run in result["runs"]:
        lines += [f"### {run['threads']} thread(s): numpy float32 GEMM peak {run['peak_gflops']} GFLOP/s", "",
                  "| model | runtime | params | GMACs | file MB | graph b1 ms (IQR) | roofline ms | x roofline | decode share | "
                  "predict 1 face ms | with detector ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for mod in run["models"]:
            for rt, r in mod["runtimes"].items():
                b1 = r.get("batch1", {})
                g = b1.get("graph", {})
                det = r.get("predict_with_detector_250px", {})
                lines.append(
                    f"| {mod['model']} | {rt} | {mod['params'] / 1e6:.2f}M | {mod['gmacs']:.3f} | "
                    f"{mod['files_mb'].get(rt, '-')} | {g.get('median_ms', '-')} ({g.get('iqr_ms', '-')}) | "
                    f"{b1.get('roofline_ms', '-')} | {b1.get('vs_roofline', '-')} | {b1.get('decode_share', '-')} | "
                    f"{r['predict_one_face']['median_ms']} | {det.get('median_ms', '-')} |")
        lines.append("")
        extra = []
        for mod in run["models"]:
            pipe = mod.get("pipeline", {})
            step = mod.get("train_step", {})
            torch_ = mod.get("pytorch_eager", {})
            extra.append(f"| {mod['model']} | {pipe.get('images_per_s', pipe.get('skipped', '-'))} | "
                         f"{step.get('images_per_s', step.get('skipped', '-'))} | "
                         f"{torch_.get('batch1', {}).get('median_ms', '-')} |")
        lines += ["| model | tf.data pipeline img/s | training step img/s | PyTorch eager b1 ms |", "|---|---|---|---|", *extra, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(_worker())
