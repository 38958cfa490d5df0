"""``lmkzoo predict``: landmarks of every face in images or folders, overlays and JSON."""

from __future__ import annotations

import json
import os
import sys

from lmkzoo.cli._args import _weights_arg

EXAMPLES = {
    "predict": "lmkzoo predict photo.jpg --out overlay.png --json     # or a folder: lmkzoo predict photos/ --out overlays/",
}


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


def register(add) -> None:
    """Register ``predict`` through ``add(name, help, handler)``."""
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
