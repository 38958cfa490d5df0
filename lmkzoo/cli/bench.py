"""``lmkzoo bench``: latency, throughput, size and FLOPs per runtime (:mod:`lmkzoo.bench`)."""

from __future__ import annotations

import json

from lmkzoo.cli._args import _count, _count0, _csv

EXAMPLES = {
    "bench": "lmkzoo bench pipnet_lite pipnet_r18 --runtime keras,tflite,onnx --quantize float16,int8 --batch 1,16 --threads 1,2",
}


def _cmd_bench(args) -> int:
    from lmkzoo.bench import format_markdown, run_bench

    res = run_bench(args.names, threads=args.threads, runtimes=args.runtime, quantize=args.quantize or (),
                    batches=args.batch, warmup=args.warmup, iters=args.iters, size=args.size,
                    pipeline=not args.no_pipeline, train_step=not args.no_train_step, torch_ref=not args.no_torch,
                    detector=not args.no_detector)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1) if args.json else format_markdown(res))
    return 0


def register(add) -> None:
    """Register ``bench`` through ``add(name, help, handler)``."""
    sp = add("bench", "latency, throughput, size and FLOPs of zoo models per runtime, against the machine's roofline",
             _cmd_bench)
    sp.add_argument("names", nargs="+", metavar="NAME", help="zoo arch[.tag] names")
    sp.add_argument("--runtime", type=_csv(str), default=["keras", "tflite"], help="comma list of keras,tflite,onnx")
    sp.add_argument("--quantize", type=_csv(str), help="TFLite variants too: comma list of float16,dynamic,int8")
    sp.add_argument("--batch", type=_csv(_count), default=[1], help="comma list of batch sizes (default 1)")
    sp.add_argument("--threads", type=_csv(_count), default=[1, 2], help="comma list of thread counts (default 1,2)")
    sp.add_argument("--size", type=_count, help="square input size instead of the zoo's")
    sp.add_argument("--warmup", type=_count0, default=10)
    sp.add_argument("--iters", type=_count, default=50, help="timed runs per measurement (median and IQR)")
    sp.add_argument("--no-pipeline", action="store_true", help="skip the tf.data pipeline rate")
    sp.add_argument("--no-train-step", action="store_true", help="skip the training-step rate")
    sp.add_argument("--no-torch", action="store_true", help="skip the PyTorch eager reference")
    sp.add_argument("--no-detector", action="store_true", help="skip the detector and end-to-end timings")
    sp.add_argument("--out", help="also write the JSON results to this file")
    sp.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
