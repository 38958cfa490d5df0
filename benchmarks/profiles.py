"""Profiles behind the gaps in benchmarks/README.md's targets table (results/profiles.json).

1. ``predict`` vs the raw graph for the default model: where the extra time goes. The Python work of ``predict``
   (crop affine, warp, mapping back, FaceLandmarks) is timed with a runner that returns a stored output; the rest
   is the runtime called from ``predict`` instead of back to back.
2. The Keras runtime on a small graph: ops in the traced serving graph and the time per op, with and without XLA.
3. The heatmap decode: the exported serving graph of ``heatmap_mnv2_sdd`` with ``refine="dark"``, ``"quarter"``
   and ``"none"`` against the graph without its decode, calls interleaved so that machine noise hits all alike.

    python benchmarks/profiles.py --threads 2 --out benchmarks/results/profiles.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _interleaved(fns: dict, iters: int, warmup: int = 10) -> dict:
    """Median ms of each callable, calling them in turn so that drift and noise hit all alike."""
    import numpy as np

    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(iters):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: round(1e3 * float(np.median(v)), 4) for k, v in times.items()}


def predict_overhead(threads: int, iters: int) -> dict:
    import numpy as np

    import lmkzoo
    from lmkzoo.image_io import read_image
    from lmkzoo.inference.loader import load_exported

    img = read_image(lmkzoo.sample_image())
    lm = lmkzoo.load()
    box = lm.predict(img)[0].box
    crop = lm.crops(img, boxes=[box])[0]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"tflite": dict(format="tflite"), "tflite-int8": dict(format="tflite", quantize="int8",
                                                                          representative_data=crop)}
        for key, kw in variants.items():
            run_lm = load_exported(lm.export(Path(tmp) / f"{key}.tflite", batch_size=None, **kw), num_threads=threads)
            stored = run_lm.runner(crop)

            class Stored:
                runtime = "stored"

                def __call__(self, crops):
                    return {k: v.copy() for k, v in stored.items()}

            python_only = lmkzoo.inference.landmarker.Landmarker(run_lm.spec, None, runner=Stored())
            t = _interleaved({"graph": lambda: run_lm.runner(crop), "predict": lambda: run_lm.predict(img, boxes=[box]),
                              "python_only": lambda: python_only.predict(img, boxes=[box])}, iters)
            t["predict_vs_graph"] = round(t["predict"] / t["graph"], 3)
            t["runtime_extra_ms"] = round(t["predict"] - t["graph"] - t["python_only"], 4)
            out[key] = t
    np.testing.assert_allclose(python_only.predict(img, boxes=[box])[0].points, run_lm.predict(img, boxes=[box])[0].points)
    return out


def keras_ops(iters: int) -> dict:
    import tensorflow as tf

    import lmkzoo

    lm = lmkzoo.load()
    sm = lm.serving_model()
    spec = tf.TensorSpec([1, *sm.inputs[0].shape[1:]], tf.uint8)
    plain = tf.function(lambda x: sm(x, training=False), input_signature=[spec])
    xla = tf.function(lambda x: sm(x, training=False), input_signature=[spec], jit_compile=True)
    graph = plain.get_concrete_function().graph
    skip = {"Const", "Identity", "NoOp", "Placeholder", "ReadVariableOp", "VarHandleOp", "IdentityN"}
    compute_ops = [op for op in graph.get_operations() if op.type not in skip]
    crop = tf.zeros([1, *sm.inputs[0].shape[1:]], tf.uint8)
    t = _interleaved({"keras": lambda: plain(crop), "keras_xla": lambda: xla(crop)}, iters)
    return {"compute_ops": len(compute_ops), "graph_ms": t["keras"], "xla_ms": t["keras_xla"],
            "us_per_op": round(1e3 * t["keras"] / len(compute_ops), 2)}


def heatmap_decode(threads: int, iters: int) -> dict:
    import keras
    import numpy as np

    import lmkzoo
    from lmkzoo.bench import _export_raw
    from lmkzoo.runtimes import TFLiteRunner

    rng = np.random.default_rng(0)
    fns, out = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for refine in ("dark", "quarter", "none"):
            keras.utils.set_random_seed(0)
            lm = lmkzoo.load("heatmap_mnv2_sdd", weights=None, builder={"refine": refine})
            run = TFLiteRunner(lm.export(Path(tmp) / f"{refine}.tflite", batch_size=None), num_threads=threads)
            if refine == "dark":
                raw = TFLiteRunner(_export_raw(lm, Path(tmp) / "raw.tflite", "tflite", None, {}), num_threads=threads)
                crop = rng.integers(0, 255, (1, *lm.input_size[::-1], 3), dtype=np.uint8)
                fns["no_decode"] = lambda raw=raw: raw(crop)
            fns[refine] = lambda run=run: run(crop)
        t = _interleaved(fns, iters)
    for refine in ("dark", "quarter", "none"):
        out[refine] = {"graph_ms": t[refine], "decode_ms": round(t[refine] - t["no_decode"], 4),
                       "decode_share": round(max(0.0, 1 - t["no_decode"] / t[refine]), 4)}
    out["no_decode_ms"] = t["no_decode"]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/results/profiles.json")
    args = ap.parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    res = {"threads": args.threads, "iters": args.iters, "load_avg_1m": round(os.getloadavg()[0], 2),
           "predict_overhead": predict_overhead(args.threads, args.iters), "keras_small_graph": keras_ops(args.iters),
           "heatmap_decode": heatmap_decode(args.threads, args.iters)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
