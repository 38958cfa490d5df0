"""The ``lmkzoo`` command line.

Each subcommand lives in a small ``_cmd_*`` function. Every expected failure prints one line to stderr and exits
with status 2, never a traceback, through one mechanism: the library raises a typed
:class:`~lmkzoo.errors.LmkzooError` for anything a user can get wrong (names, values, files), :func:`main` turns
it (and an ``OSError`` from the file system: permissions, a full disk) into that line, and argument syntax
errors (including numbers out of range, checked by the argument types below) go the same way through
:class:`_Parser`. Heavy imports happen inside the commands, so ``lmkzoo list`` and ``lmkzoo --help`` do not
import TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from lmkzoo.errors import LmkzooError

EXAMPLES = {
    "predict": "lmkzoo predict photo.jpg --out overlay.png --json     # or a folder: lmkzoo predict photos/ --out overlays/",
    "list": "lmkzoo list 'pipnet*' --pretrained",
    "info": "lmkzoo info heatmap_mnv2_025.sssd --flops",
    "convert": "lmkzoo convert pipnet-torch epoch59.pth --scheme wflw98 --meanface meanface.txt --out pipnet_r18_wflw",
    "download": "lmkzoo download --all --dest /media/usb/lmkzoo   # then LMKZOO_HOME=/media/usb/lmkzoo elsewhere",
    "publish": "lmkzoo publish runs/pipnet_r18 --license Apache-2.0 --data-license 'CC BY-NC 4.0'",
    "data": "lmkzoo data show ibug_300w/split1 --split train -n 16 --out grid.png --manual-dir ~/data/300w",
    "train": "lmkzoo train pipnet_lite --data landmark_folder/lfw_teacher68 --manual-dir shared/data/lfw_faces --out runs/lite",
    "evaluate": "lmkzoo evaluate runs/lite/final.keras --data wflw:test --out reports/wflw   # JSON + Markdown + CED PNG",
    "bench": "lmkzoo bench pipnet_lite pipnet_r18 --runtime keras,tflite,onnx --quantize float16,int8 --batch 1,16 --threads 1,2",
    "export": "lmkzoo export pipnet_lite --format tflite --quantize int8 --representative photos/ --out lite_int8.tflite",
}


class _Parser(argparse.ArgumentParser):
    """argparse with lmkzoo's error line: ``lmkzoo CMD: error: MESSAGE (lmkzoo CMD --help)``, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, accept, name: str):
    """An argparse type: a finite ``kind`` number for which ``accept(value)`` holds; ``name`` says which."""

    def parse(text: str):
        import math

        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name}; got {text!r}") from None
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"expected {name}; got {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


_count = _number(int, lambda v: v >= 1, "a positive integer")
_count0 = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive = _number(float, lambda v: v > 0, "a positive number")


def _one_line(error: BaseException) -> str:
    """The error's message on one line (messages from other libraries may span several)."""
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and not isinstance(error, LmkzooError):
        where = " -> ".join(str(f) for f in (error.filename, error.filename2) if f)
        text = f"{error.strerror or text}: {where}" if where and error.strerror else text
    return text or type(error).__name__


def _fmt_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _expand_images(paths) -> list:
    from pathlib import Path

    from lmkzoo.errors import InvalidImageError

    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in _IMAGE_SUFFIXES)
            if not found:
                raise InvalidImageError(f"no images ({', '.join(_IMAGE_SUFFIXES)}) in folder {p}")
            out += found
        elif not p.exists():
            raise InvalidImageError(f"image file not found: {p}")
        else:
            out.append(p)
    return out


def _ordered_map(fn, items, workers: int):
    """``fn`` over ``items`` on ``workers`` threads, results in order, at most ``2 * workers`` in flight (so a folder
    of any size never holds more than a few decoded images). One worker runs inline."""
    if workers <= 1:
        yield from map(fn, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="lmkzoo-predict") as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _cmd_predict(args) -> int:
    from pathlib import Path

    import lmkzoo
    from lmkzoo.visualize import draw_faces

    images = _expand_images(args.images)
    out = Path(args.out) if args.out else None
    many = len(images) > 1 or (len(args.images) == 1 and Path(args.images[0]).is_dir())
    to_folder = out is not None and (many or out.is_dir())  # overlays into a folder: one per image
    if out is not None and not to_folder and out.suffix.lower() not in _IMAGE_SUFFIXES:
        from lmkzoo.errors import InvalidArgumentError

        raise InvalidArgumentError(f"--out {out}: an overlay file must end in one of {', '.join(_IMAGE_SUFFIXES)} "
                                   "(or name a folder)")
    if to_folder and out.exists() and not out.is_dir():
        from lmkzoo.errors import InvalidArgumentError

        raise InvalidArgumentError(f"--out {out} is a file; several images need a folder for their overlays")
    # several images: decode, detect, run the network and draw on a few threads at once (every runtime and the
    # detector are thread-safe, LiteRT, OpenCV and ONNX Runtime release the GIL), each runtime on fewer CPU threads
    cpus = os.cpu_count() or 1
    workers = min(4, cpus, len(images)) if many else 1
    threads = {"num_threads": max(1, cpus // workers)} if workers > 1 else {}
    if args.model and args.model.endswith((".keras", ".tflite", ".onnx")):
        lm = (lmkzoo.load(args.model, runtime=args.runtime, **threads) if not args.model.endswith(".keras")
              else lmkzoo.load(args.model))
    else:
        lm = lmkzoo.load(args.model, weights=args.weights, runtime=args.runtime, **threads)
    detector = {"default": "default", "none": None}.get(args.detector)
    if args.detector == "haar":
        from lmkzoo.detection import HaarFaceDetector

        detector = HaarFaceDetector()
    elif detector == "default" and threads:
        from lmkzoo.detection import BlazeFaceDetector

        detector = BlazeFaceDetector(**threads)
    if to_folder:
        out.mkdir(parents=True, exist_ok=True)
    from lmkzoo.errors import InvalidImageError
    from lmkzoo.image_io import read_image

    def one(path):
        """``(record, number of faces)`` of one image, or ``(record, InvalidImageError)`` for an unreadable file."""
        try:
            img = read_image(path)
        except InvalidImageError as e:
            return {"image": str(path), "error": str(e)}, e
        faces = lm.predict(img, detector=detector, flip_test=args.flip)
        record = {"image": str(path), "size": [int(img.shape[1]), int(img.shape[0])],
                  "faces": [f.to_dict() for f in faces]}
        if out is not None:
            import cv2

            target = out / f"{Path(path).stem}_landmarks.png" if to_folder else out
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), cv2.cvtColor(draw_faces(img, faces), cv2.COLOR_RGB2BGR)):
                from lmkzoo.errors import InvalidArgumentError

                raise InvalidArgumentError(f"cannot write {target} (unknown image extension?)")
            record["overlay"] = str(target)
        return record, len(faces)

    progress = None
    if many and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=len(images), desc="images", unit="image")
    results, no_face, unreadable = [], 0, 0
    for record, found in _ordered_map(one, images, workers):
        if progress is not None:
            progress.update()
        results.append(record)
        if isinstance(found, InvalidImageError):
            if not many:
                raise found
            # one bad file in a folder: say so, keep going, exit 2 at the end (like cat / cp with several files)
            unreadable += 1
            print(f"lmkzoo predict: error: {found}", file=sys.stderr)
            continue
        no_face += not found
        if not args.json:
            print(f"{record['image']}: {found} face(s)" + (f" -> {record['overlay']}" if out is not None else ""))
    if progress is not None:
        progress.close()
    if args.json:
        print(json.dumps(results if many else results[0], indent=1))
    if no_face:
        print(f"no face found in {no_face} of {len(images)} image(s)", file=sys.stderr)
    if unreadable:
        print(f"{unreadable} of {len(images)} image(s) could not be read", file=sys.stderr)
        return 2
    return 1 if no_face == len(images) else 0


def _cmd_list(args) -> int:
    from lmkzoo.registry import default_model_name, get_spec, list_models

    names = list_models(args.pattern, pretrained=args.pretrained, family=args.family)
    if args.json:
        print(json.dumps([get_spec(n).to_dict() for n in names], indent=2, default=str))
        return 0
    if not names:
        print(f"no zoo model matches {args.pattern!r}" + (" with weights" if args.pretrained else ""))
        return 0
    default = default_model_name()
    rows = []
    for n in names:
        s = get_spec(n)
        w = "embedded" if (s.weights and s.weights.file) else ("yes" if s.weights else "-")
        size = "x".join(str(v) for v in s.input_size)
        rows.append([n + (" (default)" if n == default else ""), s.family, s.scheme, size, w])
    print(_fmt_table(rows, ["model", "family", "scheme", "input", "weights"]))
    return 0


def _cmd_info(args) -> int:
    from lmkzoo.registry import get_spec

    spec = get_spec(args.name)
    report = flops_report(spec) if args.flops else None
    if args.json:
        d = spec.to_dict()
        if report is not None:
            d["compute"] = {"gmacs": report.gmacs, "gflops": report.gflops, "params": report.params,
                            "trainable_params": report.trainable_params, "size_mib_float32": report.size_mb}
        print(json.dumps(d, indent=2, default=str))
        return 0
    print(format_model_card(spec))
    if report is not None:
        print(format_compute(spec, report))
    return 0


def _cmd_convert(args) -> int:
    from lmkzoo.convert.pipnet_torch import convert_checkpoint

    _, report = convert_checkpoint(args.checkpoint, scheme=args.scheme, meanface=args.meanface, model=args.model,
                                   out=args.out, input_size=args.input_size, check=not args.no_check)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k}: {v}")
    return 0


def _cmd_download(args) -> int:
    from lmkzoo import hub
    from lmkzoo.errors import InvalidArgumentError

    if not args.names and not args.all:
        raise InvalidArgumentError("name at least one model (lmkzoo list --pretrained) or use --all")
    got = hub.download(args.names, all_models=args.all, dest=args.dest, progress=not args.quiet)
    for name, path in got.items():
        print(f"{name}\t{path}")
    for name in args.names:
        from lmkzoo.registry import get_spec

        spec = get_spec(name)
        if spec.name not in got:
            print(f"{spec.name}\tships inside lmkzoo ({spec.weights.file}); nothing to download")
    if args.dest is not None and got:
        from pathlib import Path

        dest = Path(args.dest).expanduser().resolve()
        print(f"{len(got)} file(s) in {dest / 'weights'} (SHA256SUMS beside them). On the offline machine use "
              f"LMKZOO_HOME={dest} or LMKZOO_WEIGHTS_MIRROR={dest / 'weights'}", file=sys.stderr)
    return 0


def _parse_metric(text: str):
    key, sep, value = text.partition("=")
    try:
        if not sep or not key:
            raise ValueError
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a metric is KEY=NUMBER, e.g. wflw_test_nme=4.6; got {text!r}") from None


def _cmd_publish(args) -> int:
    from lmkzoo import hub
    from lmkzoo.training import publish

    res = publish.publish(
        args.source, name=args.name, out_dir=args.out, url_template=args.url_template or hub.DEFAULT_URL_TEMPLATE, license=args.license,
        training_data=args.training_data, data_license=args.data_license, made_by=args.made_by,
        metrics=dict(args.metric) if args.metric else None, mirrors=args.mirror or (),
    )
    print(f"wrote {res.path} ({res.size} bytes, sha256 {res.sha256}); upload it to {res.url}", file=sys.stderr)
    print(res.to_yaml(), end="")
    return 0


def _weights_arg(text: str):
    return None if text.lower() == "none" else text


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


def _cmd_train(args) -> int:
    from lmkzoo.registry import get_spec
    from lmkzoo.training.train import train

    try:
        overrides = json.loads(args.builder) if args.builder else None
    except json.JSONDecodeError as e:
        from lmkzoo.errors import InvalidArgumentError

        raise InvalidArgumentError(f"--builder must be a JSON object; got {args.builder!r} ({e})") from None
    model = get_spec(args.name)
    if args.input_size:
        import dataclasses

        model = dataclasses.replace(model, input={**model.input, "size": [args.input_size, args.input_size]})
    strategy = args.strategy
    if strategy == "multi_worker":
        # TensorFlow configures the cluster only before its first op: make the strategy before any data is read
        from lmkzoo.training.run import make_strategy

        strategy = make_strategy("multi_worker")
    _, hist = train(model, data=args.data, data_dir=args.data_dir, manual_dir=args.manual_dir,
                    train_split=args.train_split, val_split=None if args.val_split == "none" else args.val_split,
                    out_dir=args.out, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                    augment=args.augment, builder_overrides=overrides, steps_per_epoch=args.steps_per_epoch,
                    strategy=strategy, precision=args.precision, seed=args.seed, unlabeled=args.unlabeled,
                    imagenet_weights=args.imagenet_weights, verbose=1 if sys.stdout.isatty() else 2)
    last = {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v}
    # one JSON line after Keras' epoch lines
    print(json.dumps({"out": args.out, "train_seconds": round(hist["train_seconds"], 1), "last_epoch": last}))
    return 0


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


def _csv(kind):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            return [kind(t) for t in items]
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}; got {text!r}") from None

    return parse


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


def _cmd_data_show(args) -> int:
    from lmkzoo.data.show import parse_augment, show_examples, write_png

    if args.model:
        from lmkzoo.registry import get_spec

        spec = get_spec(args.model)
        crop, size = dict(spec.crop), tuple(spec.input_size)
        augment = spec.recipe.get("augment", "none") if args.augment is None else args.augment
    else:
        crop = {"policy": args.crop, "scale": args.crop_scale}
        size = (args.size, args.size)
        augment = "pipnet" if args.augment is None else args.augment
    grid = show_examples(args.name, split=args.split, n=args.n, data_dir=args.data_dir, manual_dir=args.manual_dir,
                         crop=crop, input_size=size, augment=parse_augment(augment), seed=args.seed,
                         skeleton=not args.no_skeleton, radius=args.radius, cols=args.cols)
    path = write_png(args.out, grid)
    print(f"wrote {path} ({args.n} examples of {args.name} [{args.split}], crop {crop}, augment {augment})")
    return 0
def flops_report(spec):
    """:class:`lmkzoo.flops.MacsReport` of a randomly initialised network for ``spec``."""
    from lmkzoo.flops import count_macs
    from lmkzoo.inference.loader import build_network

    return count_macs(build_network(spec))


def format_compute(spec, report) -> str:
    """Compute lines of a model card: MACs (the unit papers print as "GFLOPs"), parameters, float32 size."""
    w, h = spec.input_size
    lines = [
        f"  compute at {w}x{h}: {report.gmacs:.3f} GMACs (multiply-adds; {report.gflops:.3f} GFLOPs = 2 x MACs; "
        "BatchNorm, biases and activations not counted)",
        f"  size: {report.params:,} parameters ({report.trainable_params:,} trainable), {report.size_mb:.2f} MiB as float32",
    ]
    pm = spec.paper_metrics
    if "gflops" in pm or "size_mb" in pm:
        paper = []
        if "gflops" in pm:
            paper.append(f"{pm['gflops']} GFLOPS (MACs)")
        if "size_mb" in pm:
            paper.append(f"{pm['size_mb']} MB")
        lines.append(f"  paper: {', '.join(paper)}")
    return "\n".join(lines)


def format_model_card(spec) -> str:
    """Human-readable model card of a :class:`~lmkzoo.registry.ModelSpec`."""
    lines = [f"{spec.name}  ({spec.family}, scheme {spec.scheme})"]
    if spec.description:
        lines.append(f"  {spec.description}")
    lines.append(f"  input: {spec.input_size[0]}x{spec.input_size[1]} RGB, mean {list(spec.mean)}, std {list(spec.std)}")
    lines.append(f"  crop: {dict(spec.crop)}")
    lines.append(f"  builder: {dict(spec.builder)}")
    if spec.recipe:
        lines.append(f"  recipe: {dict(spec.recipe)}")
    if spec.paper:
        lines.append(f"  paper: {spec.paper.get('title', '')} {spec.paper.get('url', '')}".rstrip())
    if spec.paper_metrics:
        lines.append(f"  paper metrics: {dict(spec.paper_metrics)}")
    w = spec.weights
    if w is None:
        lines.append("  weights: none published (lmkzoo.load(name, weights=None) builds it randomly initialised)")
    else:
        lines.append(f"  weights: {w.file or w.url}")
        for m in w.mirrors:
            lines.append(f"    mirror: {m}")
        lines.append(f"    sha256 {w.sha256}" + (f", {w.size} bytes" if w.size else "") + f", format {w.format}")
        lines.append(f"    licence: {w.license}")
        lines.append(f"    training data: {w.training_data} (licence: {w.data_license or 'not stated'})")
        lines.append(f"    made by: {w.made_by}")
        if w.source:
            lines.append(f"    converted from: {w.source}")
        if w.recipe:
            lines.append(f"    recipe: {dict(w.recipe)}")
        if w.metrics:
            lines.append("    measured: " + ", ".join(f"{k} {v}" for k, v in w.metrics.items()))
        if w.url:
            from lmkzoo import hub

            cached = hub.weights_dir() / w.filename
            state = "present" if cached.is_file() else f"not downloaded yet (lmkzoo download {spec.name})"
            lines.append(f"    cache: {cached} ({state})")
    if spec.notes:
        lines.append(f"  notes: {spec.notes}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lmkzoo",
        description="Face-landmark model zoo for Keras 3 / TensorFlow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(f"  {v}" for v in EXAMPLES.values()),
    )
    from lmkzoo import __version__

    p.add_argument("--version", action="version", version=f"lmkzoo {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_, func):
        sp = sub.add_parser(
            name, help=help_, description=help_, epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.set_defaults(func=func)
        sp.add_argument("-v", "--verbose", action="store_true",
                        help="let TensorFlow, absl and LiteRT print their log lines on stderr")
        return sp

    sp = add("predict", "landmarks of every face in images (the embedded default model unless --model)", _cmd_predict)
    sp.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    sp.add_argument("--model", help="zoo arch[.tag], or a .keras / .tflite / .onnx file (default: the embedded model)")
    sp.add_argument("--weights", default="pretrained", type=_weights_arg, help="for zoo names: pretrained, none or a path")
    sp.add_argument("--runtime", default="auto", choices=["auto", "keras", "tflite", "onnx"],
                    help="auto (default): LiteRT for published weights (no TensorFlow import), else Keras")
    sp.add_argument("--detector", default="default", choices=["default", "haar", "none"],
                    help="face detector: BlazeFace (default), OpenCV Haar, or none (the whole image is the face)")
    sp.add_argument("--flip", action="store_true", help="flip test (average with the mirrored crop)")
    sp.add_argument("--out", help="overlay image (one input) or folder (several inputs)")
    sp.add_argument("--json", action="store_true", help="print the landmarks as JSON")

    sp = add("list", "list zoo models (fnmatch pattern over names and tags)", _cmd_list)
    sp.add_argument("pattern", nargs="?", default="*")
    sp.add_argument("--pretrained", action="store_true", help="only models with weights")
    sp.add_argument("--family", help="only this family (pipnet, heatmap, lotr, laplacekl, uglli)")
    sp.add_argument("--json", action="store_true", help="print the full specs as JSON")

    sp = add("info", "show a model's card: input contract, recipe, paper numbers, weights and licence", _cmd_info)
    sp.add_argument("name", help="arch or arch.tag, e.g. pipnet_r18 or pipnet_r18.300w")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--flops", action="store_true",
                    help="build the network (random weights) and print its multiply-adds (GMACs), parameters and float32 size")
    sp = add("convert", "convert an official checkpoint into lmkzoo weights (.weights.h5 + .keras), with a numeric check", _cmd_convert)
    sp.add_argument("kind", choices=["pipnet-torch"], help="checkpoint kind")
    sp.add_argument("checkpoint", help="PyTorch state_dict (.pth), e.g. PIPNet's snapshots/<data>/<exp>/epoch59.pth")
    sp.add_argument("--scheme", required=True, help="landmark scheme of the checkpoint (wflw98, ibug68, cofw29, aflw19, jd106)")
    sp.add_argument("--meanface", help="PIPNet meanface.txt the checkpoint was trained with (default: the scheme's packaged one)")
    sp.add_argument("--model", help="zoo arch to build (default: inferred from the checkpoint)")
    sp.add_argument("--out", help="output path stem (writes STEM.weights.h5 and STEM.keras)")
    sp.add_argument("--input-size", type=_count, default=256)
    sp.add_argument("--no-check", action="store_true", help="skip the PyTorch-vs-Keras numeric check")
    sp.add_argument("--json", action="store_true")

    sp = add("download", "pre-fetch pretrained weights into the cache, or into a folder for an offline machine",
             _cmd_download)
    sp.add_argument("names", nargs="*", metavar="NAME", help="arch or arch.tag with published weights")
    sp.add_argument("--all", action="store_true", help="every zoo entry with downloadable weights")
    sp.add_argument("--dest", metavar="DIR", help="write DIR/weights/* + SHA256SUMS instead of the cache; copy DIR "
                    "to the offline machine and set LMKZOO_HOME=DIR (or LMKZOO_WEIGHTS_MIRROR=DIR/weights)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")

    sp = add("publish", "write the .weights.h5 file of a model trained with lmkzoo and print its zoo.yaml entry",
             _cmd_publish)
    sp.add_argument("source", metavar="MODEL_DIR_OR_FILE",
                    help="a training run folder (final.keras / final.weights.h5), a .keras or a .weights.h5 file")
    sp.add_argument("--name", help="zoo arch.tag (default: from the run's config.json or the .keras file)")
    sp.add_argument("--out", metavar="DIR", help="folder for the weights file (default: beside the source)")
    sp.add_argument("--url-template", default=None,
                    help="upload URL; {version} {filename} {name} {arch} {tag} {sha256} {sha8} are filled in")
    sp.add_argument("--mirror", action="append", metavar="URL", help="a mirror URL for the entry (repeatable)")
    sp.add_argument("--license", required=True, help="licence of the weights, e.g. Apache-2.0")
    sp.add_argument("--data-license", required=True, help="licence of the training data")
    sp.add_argument("--training-data", help="what it was trained on (default: the run's data)")
    sp.add_argument("--made-by", help="how it was made (default: 'trained by lmkzoo ... with the NAME recipe ...')")
    sp.add_argument("--metric", action="append", type=_parse_metric, metavar="KEY=VALUE",
                    help="a measured metric (repeatable; default: the run's last validation metrics)")

    sp = add("train", "train a zoo model with its recipe (tf.distribute, resumable checkpoints, validation NME)",
             _cmd_train)
    sp.add_argument("name", help="zoo arch[.tag]")
    sp.add_argument("--data", required=True, help="TFDS name[/config], e.g. wflw or ibug_300w/split1")
    sp.add_argument("--data-dir", help="TFDS data dir (default ~/tensorflow_datasets)")
    sp.add_argument("--manual-dir", help="the dataset's original files, to build it first")
    sp.add_argument("--train-split", default="train")
    sp.add_argument("--val-split", default="validation", help="split for the per-epoch NME/FR/AUC, or 'none'")
    sp.add_argument("--epochs", type=_count, help="default: the recipe's")
    sp.add_argument("--batch-size", type=_count, help="global batch (default: the recipe's)")
    sp.add_argument("--lr", type=_positive, help="learning rate (default: the recipe's)")
    sp.add_argument("--augment", help="augmentation preset (default: the recipe's)")
    sp.add_argument("--builder", metavar="JSON", help='builder overrides, e.g. \'{"backbone_args": {"width_multiplier": 0.5}}\'')
    sp.add_argument("--input-size", type=_count, help="square network input in pixels (default: the zoo's)")
    sp.add_argument("--steps-per-epoch", type=_count,
                    help="batches per epoch (default: one pass over the training split; more repeats it, reshuffled)")
    sp.add_argument("--strategy", default="one_device", choices=["one_device", "mirrored", "multi_worker", "tpu"])
    sp.add_argument("--precision", help="Keras dtype policy, e.g. mixed_bfloat16")
    sp.add_argument("--unlabeled", help="unlabeled faces (TFDS name) for adversarial recipes (laplacekl_rcn_d) and self-training "
                    "ones (pipnet_r18_stc: STC rounds on NAME[:SPLIT][,NAME...] or a paradigm of the recipe, uda or gssl; "
                    "gsl or no --unlabeled trains supervised)")
    sp.add_argument("--seed", type=_count0, default=0)
    sp.add_argument("--imagenet-weights", help="ImageNet MobileNetV2 TFLite file for recipes with backbone_init: imagenet "
                    "(default $LMKZOO_IMAGENET_MOBILENETV2)")
    sp.add_argument("--out", default="runs/train", help="run folder; started again with the same folder, a run resumes")

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

    sp = add("data", "inspect datasets through the training pipeline", None)
    sp.set_defaults(func=lambda _args, _sp=sp: _sp.print_help() or 0)
    data_sub = sp.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    show = data_sub.add_parser(
        "show", help="draw pipeline examples (crop + augmentation) with their points into a PNG grid",
        description="Draw n examples of a TFDS dataset as the training pipeline produces them (crop policy, "
        "augmentation, flips with the scheme permutation), points coloured by side (image-left red, right blue, "
        "midline green) over the scheme skeleton.",
        epilog=f"example:\n  {EXAMPLES['data']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    show.set_defaults(func=_cmd_data_show)
    show.add_argument("name", help="TFDS name with config, e.g. ibug_300w/split1, wflw, landmark_folder/dlib_faces68")
    show.add_argument("--split", default="train")
    show.add_argument("-n", type=_count, default=16, help="number of examples (default 16)")
    show.add_argument("--out", default="grid.png", help="PNG file to write (default grid.png)")
    show.add_argument("--data-dir", help="TFDS data dir (default ~/tensorflow_datasets)")
    show.add_argument("--manual-dir", help="original files, to build the dataset if it is not prepared yet")
    show.add_argument("--model", help="take crop, input size and augmentation from this zoo model (e.g. pipnet_r18.300w)")
    show.add_argument("--crop", default="box", choices=["box", "five_point", "five_point_hull", "none"])
    show.add_argument("--crop-scale", type=_positive, default=1.2, help="box enlargement / hull factor (default 1.2)")
    show.add_argument("--size", type=_count, default=256, help="crop size in pixels (default 256)")
    show.add_argument("--augment", help="preset name (pipnet, earp, uglli, ...), 'none', or a JSON dict; default: the "
                      "model's recipe, else pipnet")
    show.add_argument("--seed", type=_count0, default=0)
    show.add_argument("--cols", type=_count, help="grid columns (default about square)")
    show.add_argument("--radius", type=_positive, help="point radius in pixels")
    show.add_argument("--no-skeleton", action="store_true", help="do not draw the scheme's polylines")
    return p


def _quiet_native_logs() -> None:
    """Keep TensorFlow, absl, LiteRT and XNNPACK log lines off stderr (``--verbose`` keeps them): native libraries
    write to file descriptor 2, which goes to /dev/null, while Python's ``sys.stderr`` (lmkzoo's messages, warnings,
    progress bars, tracebacks) keeps writing to the real stderr through a duplicate of it."""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if sys.stderr is not sys.__stderr__ or getattr(_quiet_native_logs, "done", False):
        return  # stderr is already redirected (pytest's capture, an embedding program): leave the descriptors alone
    try:
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = sys.__stderr__ = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding,
                                            errors=sys.stderr.errors)
    _quiet_native_logs.done = True


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verbose", False):
        _quiet_native_logs()
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader went away (``lmkzoo list | head``): stop quietly, as Unix tools do; point stdout at devnull so
        # the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (LmkzooError, OSError) as e:  # what a user can get wrong, and what the file system refuses
        print(f"lmkzoo {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
