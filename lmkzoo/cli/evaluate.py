"""``lmkzoo evaluate``: NME / FR / AUC of a model on a TFDS split, with its reports."""

from __future__ import annotations

import argparse
import json
import sys

from lmkzoo.cli._args import _count, _positive, _weights_arg

EXAMPLES = {
    "evaluate": "lmkzoo evaluate runs/lite/final.keras --data wflw:test --out reports/wflw   # JSON + Markdown + CED PNG",
}


def _cmd_evaluate(args) -> int:
    from lmkzoo.inference.evaluate import evaluate

    report = evaluate(args.model, args.data, data_dir=args.data_dir, manual_dir=args.manual_dir, norm=args.norm,
                      cutoff=args.cutoff, subsets=args.subsets, flip_test=args.flip, batch_size=args.batch_size,
                      out_dir=args.out, weights=args.weights, runtime=args.runtime, max_faces=args.max_faces,
                      boxes=args.boxes)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.markdown())
    if report.files:
        print(f"wrote {', '.join(report.files.values())}", file=sys.stderr)
    return 0


def register(add) -> None:
    """Register ``evaluate`` through ``add(name, help, handler)``."""
    sp = add("evaluate", "evaluate a model on a TFDS split: NME / FR / AUC per subset, JSON + Markdown report, CED plot",
             _cmd_evaluate)
    sp.add_argument("model", help="zoo arch[.tag], or a .keras / .tflite / .onnx file")
    sp.add_argument("--data", required=True, help="TFDS_NAME[/CONFIG][:SPLIT] (default split: test)")
    sp.add_argument("--data-dir")
    sp.add_argument("--manual-dir", help="the dataset's original files, to build it first")
    sp.add_argument("--weights", default="pretrained", type=_weights_arg, help="for zoo names: pretrained, none or a path")
    sp.add_argument("--runtime", default="keras", choices=["keras", "tflite", "onnx"])
    sp.add_argument("--norm", choices=["inter_ocular", "inter_pupil", "bbox", "diagonal", "image"],
                    help="NME normalisation (default: the dataset's standard one)")
    sp.add_argument("--cutoff", type=_positive, help="FR / AUC cutoff (default: the dataset's standard one)")
    sp.add_argument("--subsets", action=argparse.BooleanOptionalAction, default=True,
                    help="per-subset rows (300W common/challenge, WFLW attributes, 300VW categories, ...); default on")
    sp.add_argument("--flip", action="store_true", help="flip test (average with the mirrored crop)")
    sp.add_argument("--batch-size", type=_count, default=32)
    sp.add_argument("--max-faces", type=_count, help="only the first N faces")
    sp.add_argument("--boxes", default="annotation", choices=["annotation", "detector"],
                    help="face boxes: the reference points' tight box (the papers' protocol; default) or the built-in detector")
    sp.add_argument("--out", help="folder for report.json, report.md and ced.png")
    sp.add_argument("--json", action="store_true")
