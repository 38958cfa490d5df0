"""``lmkzoo export``: a model's serving graph to TFLite, ONNX or a SavedModel."""

from __future__ import annotations

import sys

from lmkzoo.cli._args import _count, _weights_arg

EXAMPLES = {
    "export": "lmkzoo export pipnet_lite --format tflite --quantize int8 --representative photos/ --out lite_int8.tflite",
}


def _cmd_export(args) -> int:
    import lmkzoo

    lm = lmkzoo.load(args.name) if args.name.endswith(".keras") else lmkzoo.load(args.name, weights=args.weights)
    ext = {"tflite": ".tflite", "onnx": ".onnx", "saved_model": ""}[args.format]
    out = args.out or f"{lm.spec.name}{'' if not args.quantize else '_' + args.quantize}{ext}"
    path = lm.export(out, format=args.format, quantize=args.quantize, representative_data=args.representative,
                     batch_size=args.batch_size, with_affine=args.with_affine, data_dir=args.data_dir)
    from pathlib import Path

    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) if Path(path).is_dir() else Path(path).stat().st_size
    print(f"{path}\t{size} bytes\t{lm.spec.name} {args.format} {args.quantize or 'float32'}")
    if args.quantize == "int8":
        from lmkzoo.export.metadata import read_metadata

        cal = read_metadata(path).get("calibration") or {}
        detail = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in cal.items() if k not in ("crops", "source"))
        print(f"int8 calibration: {cal.get('crops')} crops from {cal.get('source')}" + (f" ({detail})" if detail else ""),
              file=sys.stderr)
    return 0


def register(add) -> None:
    """Register ``export`` through ``add(name, help, handler)``."""
    sp = add("export", "export a model's serving graph (decoding included) to TFLite, ONNX or a SavedModel", _cmd_export)
    sp.add_argument("name", help="zoo arch[.tag] or a .keras file written by lmkzoo")
    sp.add_argument("--weights", default="pretrained", type=_weights_arg,
                    help="'pretrained' (default), 'none' (random init) or a .weights.h5 / .keras path")
    sp.add_argument("--format", default="tflite", choices=["tflite", "onnx", "saved_model"])
    sp.add_argument("--quantize", choices=["float16", "dynamic", "int8"], help="TFLite quantization (default float32)")
    sp.add_argument("--representative", metavar="DATA",
                    help="int8 calibration: a folder of images or a TFDS split 'name[/config][:split]'")
    sp.add_argument("--data-dir", help="TFDS data dir for --representative")
    sp.add_argument("--batch-size", type=_count, default=None,
                    help="fixed batch (GPU delegates need one, e.g. 1); default dynamic")
    sp.add_argument("--with-affine", action="store_true",
                    help="the graph also takes the 2x3 crop-to-image affine and returns image pixels")
    sp.add_argument("--out", help="output file or folder (default NAME[_QUANT].EXT here)")
