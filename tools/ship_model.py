"""Ship a trained run inside the package: float16 weights in ``lmkzoo/weights/``, SHA-256, and a model card.

    python tools/ship_model.py RUN --name pipnet_r18.300w --data 300w --write-zoo
    python tools/ship_model.py RUN --name pipnet_lite.300w_lfw --data 300w+lfw --write-zoo
    python tools/ship_model.py RUN --name laplacekl_rcn_d.300w_quarter --data 300w+lfw_unlabeled --write-zoo  # LFW images
    python tools/ship_model.py --litert-only --name pipnet_lite.lfw     # refresh a shipped model's LiteRT form

1. ``lmkzoo.training.publish.publish`` checks the run (config, history) and writes its float32 ``.weights.h5``, rebuilt exactly
   as ``lmkzoo.load`` rebuilds the model (PIPNet's mean face becomes the tag's ``builder``).
2. The file is rewritten with every float array stored as float16 (half the size; Keras casts back to float32 on
   load) into ``lmkzoo/weights/<name>-<sha256[:8]>.weights.h5``, and checked against the float32 model.
3. The float16 model is scored once, through ``predict``'s path: on the 300-W Common test (``ibug_300w:test_common``,
   shared/data/ibug_300w) with the annotation boxes (the papers' protocol: the tight box of the reference points,
   then the model's own crop) and with the built-in detector; on shared/data/faces68_dlib (dlib-predictor points)
   with both. The last validation NME of the run (the 300-W ``train[90%:]`` selection slice) goes in too.
4. The zoo's default model (or any with ``--litert``) also ships its LiteRT form beside the weights (same stem,
   written after the card is in zoo.yaml, with ``--write-zoo``, since its metadata embeds the spec and card;
   ``.tflite``: the float32 serving graph with a dynamic batch, decoding included), so that ``lmkzoo.load()``
   predicts on LiteRT without importing TensorFlow (lmkzoo.export.cache; other shipped models build theirs once
   into the cache). ``--litert-only`` rewrites just that file and its zoo.yaml line for weights already shipped
   (after a change to the serving graph or a codec).
5. ``--write-zoo`` writes the tag into zoo.yaml between ``# BEGIN weights NAME`` and ``# END weights NAME``: the
   tag's own keys as they are, plus ``builder`` (the weights' overrides) and ``weights`` (the card).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

LFW_DATA = (
    "LFW (Labeled Faces in the Wild, UMass Amherst) subset of GitHub osbo8060/FaceAnchorDataset: 3,733 250x250 face "
    "crops of 158 people (FaceTorch marks removed by inpainting), 90 % of the people for training; 68-point pseudo-labels "
    "from MediaPipe FaceMesh 0.10.14 (468 mesh vertices mapped to iBUG-68 by a fit on dlib's example faces), "
    "lmkzoo shared/data/lfw_faces/teacher68.csv, see its TEACHER.md and SOURCE.md"
)
LFW_IMAGES_LICENSE = ("LFW images: released by UMass Amherst for research, no explicit licence (photos of public figures "
                      "from news sources)")
LFW_LICENSE = LFW_IMAGES_LICENSE + "; teacher labels: outputs of MediaPipe FaceMesh (Apache-2.0)"
#: the unlabelled set of adversarial recipes (tools/train_300w.py --unlabeled): images only
LFW_UNLABELED = (
    "unlabelled (images only, no landmarks reach the training): the 3,366 LFW faces of landmark_folder/lfw_teacher68's "
    "train split (Labeled Faces in the Wild, UMass Amherst, via GitHub osbo8060/FaceAnchorDataset; 90 % of the people), "
    "cropped at the five points of the MediaPipe teacher's landmarks"
)
W300_DATA = (
    "300-W (iBUG, Sagonas et al. 2013/2016) human 68-point annotations, split 1 training folders as far as they could be "
    "had (shared/data/ibug_300w): AFW 337, HELEN train 870 of 2,000, LFPW train 805 of 811 = 2,012 faces; trained on "
    "the 90 % TFDS slice train[:90%] (1,811 faces), train[90%:] (201) held out for model selection; no iBUG challenging "
    "set. Test: the complete 300-W Common subset (HELEN test 330 + LFPW test 224), scored once"
)
W300_LICENSE = "300-W annotations: research use, not commercial; images: web photos collected by the AFW, HELEN and LFPW authors"
IMAGENET = ("backbone started from ImageNet MobileNetV2 (TensorFlow's int8 tf2_mobilenet_v2_1.0_224_ptq.tflite, "
            "google-coral/test_data, Apache-2.0; converted by lmkzoo.convert.mobilenet_v2_tflite)")
DATA = {
    "300w": (W300_DATA, W300_LICENSE),
    "300w+lfw": (W300_DATA.replace("; trained on the 90 %", ", seen twice an epoch; trained on the 90 %")
                 + "; plus " + LFW_DATA, W300_LICENSE + "; " + LFW_LICENSE),
    "lfw": (LFW_DATA, LFW_LICENSE),
    "300w+lfw_unlabeled": (W300_DATA.replace("; no iBUG", "; plus, " + LFW_UNLABELED + "; no iBUG"),
                           W300_LICENSE + "; " + LFW_IMAGES_LICENSE),
}
#: the weights inherit the training data's terms
WEIGHTS_LICENSE = {"300w": "research use only, not commercial (300-W terms)",
                   "300w+lfw": "research use only, not commercial (300-W terms)",
                   "300w+lfw_unlabeled": "research use only, not commercial (300-W terms)", "lfw": "Apache-2.0"}


def to_float16(src: Path, dst: Path) -> None:
    """Copy a Keras ``.weights.h5`` file with every floating-point dataset stored as float16, without the
    optimizer state a training checkpoint carries (inference does not need it)."""
    import h5py

    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        for k, v in fin.attrs.items():
            fout.attrs[k] = v

        def copy(name, obj):
            if name == "optimizer" or name.startswith("optimizer/"):
                return
            if isinstance(obj, h5py.Group):
                g = fout.require_group(name)
                for k, v in obj.attrs.items():
                    g.attrs[k] = v
            else:
                data = obj[()]
                if np.issubdtype(np.asarray(data).dtype, np.floating):
                    data = np.asarray(data, np.float16)
                ds = fout.create_dataset(name, data=data)
                for k, v in obj.attrs.items():
                    ds.attrs[k] = v

        fin.visititems(copy)


def score(lm, shared: Path, data_dir) -> dict:
    """The card's metrics of Landmarker ``lm`` (percent): 300-W Common (annotation boxes and detector) for 68-point
    models, and the dlib faces."""
    from eval_faces68_dlib import evaluate as eval_dlib
    from eval_faces68_dlib import load_faces

    from lmkzoo import metrics
    from lmkzoo.inference.evaluate import evaluate

    out = {}
    if lm.spec.scheme != "ibug68":
        return out
    for boxes, suffix in (("annotation", ""), ("detector", "_detector")):
        r = evaluate(lm, "ibug_300w:test_common", data_dir=data_dir, manual_dir=shared / "ibug_300w", boxes=boxes)
        nmes = np.array(r.per_face_nme)
        out[f"300w_common_nme{suffix}"] = round(100 * r.nme, 3)
        out[f"300w_common_fr_0.10{suffix}"] = round(100 * metrics.failure_rate(np.where(np.isfinite(nmes), nmes, 1e9), 0.10), 3)
        out[f"300w_common_auc_0.08{suffix}"] = round(float(metrics.auc(np.where(np.isfinite(nmes), nmes, 1e9), 0.08)), 4)
        if boxes == "annotation":
            out["300w_common_helen_nme"] = round(100 * r.subsets["common/helen"]["nme"], 3)
            out["300w_common_lfpw_nme"] = round(100 * r.subsets["common/lfpw"]["nme"], 3)
            if r.uncertainty_error_pearson:
                for k, v in r.uncertainty_error_pearson.items():
                    if isinstance(v, (int, float)):
                        out[f"300w_common_uncertainty_{k}"] = round(float(v), 4)
        else:
            out["300w_common_faces_missed_detector"] = r.faces_missed
    dlib = eval_dlib(lm, load_faces(shared / "faces68_dlib"))
    out["faces68_dlib_nme_detector"] = round(dlib["detector"]["nme_percent"], 3)
    out["faces68_dlib_nme_oracle_box"] = round(dlib["oracle"]["nme_percent"], 3)
    out["faces68_dlib_faces_found"] = dlib["detector"]["faces_found"]
    return out


def validation_covariance_scale(lm, data_dir) -> dict:
    """For a model that predicts covariances: the one factor that calibrates them, fitted on the 300-W selection
    slice (``train[90%:]``, never the test set) with the annotation boxes, and the slice's coverage before it."""
    import tensorflow_datasets as tfds

    from lmkzoo import schemes
    from lmkzoo.data.pipeline import load_tfds
    from lmkzoo.metrics.uncertainty import ellipse_coverage, fit_covariance_scale

    scheme = schemes.get(lm.spec.scheme)
    aligned = lm.spec.crop.get("policy", "box") != "box"
    pred, cov, gt = [], [], []
    for ex in tfds.as_numpy(load_tfds("ibug_300w", "train[90%:]", data_dir=data_dir)):
        kw = {"five_points": [scheme.five_points(ex["landmarks"])]} if aligned else {"boxes": [ex["bbox"]]}
        (face,) = lm.predict(ex["image"], **kw)
        if face.covariance is None:
            return {}
        pred.append(face.points)
        cov.append(face.covariance)
        gt.append(ex["landmarks"])
    pred, cov, gt = np.stack(pred), np.stack(cov), np.stack(gt)
    before = ellipse_coverage(pred, gt, cov)
    return {"covariance_scale": round(fit_covariance_scale(pred, gt, cov), 4),
            "validation_coverage_2sigma_uncalibrated": round(100 * before["coverage_2sigma"], 2)}


def float16_drift(spec, net32, net16, shared: Path) -> tuple[float, float]:
    """The largest and the mean landmark distance between the float32 and float16 weights' points on the 43 dlib
    faces' crops (tight boxes of their points), as fractions of the crop side. Real faces, not noise: on a noise image a score map is
    nearly flat and a rounding difference can move its maximum to another cell, which says nothing about faces."""
    from eval_faces68_dlib import load_faces

    from lmkzoo.inference.landmarker import Landmarker

    faces = load_faces(shared / "faces68_dlib")
    images = [img for img, _ in faces.values()]
    boxes = [[(np.r_[p.min(0), p.max(0)], None) for p in pts] for _, pts in faces.values()]
    if spec.crop.get("policy", "box") != "box":  # five-point policies take the points' own five
        from lmkzoo import schemes

        sch = schemes.get("ibug68")  # the dlib faces' points
        boxes = [[(np.r_[p.min(0), p.max(0)], sch.five_points(p)) for p in pts] for _, pts in faces.values()]
    crops = Landmarker(spec, net32).crop_faces(images, boxes)[0]
    a, b = Landmarker(spec, net32).run_crops(crops), Landmarker(spec, net16).run_crops(crops)
    dist = np.linalg.norm(a["landmarks"] - b["landmarks"], axis=-1) / max(spec.input_size)
    return float(dist.max()), float(dist.mean())


def write_zoo(name: str, builder: dict, entry: dict) -> Path:
    """Replace the block between ``# BEGIN weights NAME`` and ``# END weights NAME`` in zoo.yaml with the tag: its
    current keys, ``builder`` merged with the weights' overrides, and ``weights``."""
    import yaml

    from lmkzoo.training import publish

    zoo = ROOT / "zoo.yaml"
    src = zoo.read_text()
    begin, end = f"# BEGIN weights {name} ", f"# END weights {name}\n"
    a, b = src.find(begin), src.find(end)
    if a < 0 or b < a:
        raise SystemExit(f"zoo.yaml has no '{begin.strip()} (...)' ... '{end.strip()}' block")
    line_start = src.rfind("\n", 0, a) + 1
    indent = src[line_start:a]
    body_start, body_end = src.index("\n", a) + 1, b - len(indent)
    arch, tag = name.split(".", 1)
    current = dict(yaml.safe_load(src)["models"][arch]["tags"][tag])
    current.pop("weights", None)
    tag_builder = {**dict(current.pop("builder", None) or {}), **builder}
    lines = [f"{tag}:"]
    for k, v in current.items():
        text = yaml.safe_dump(publish._plain(v), default_flow_style=True, width=100000).strip()
        lines.append(f"  {k}: " + text.removesuffix("...").strip())  # a plain scalar ends its document with "..."
    if tag_builder:  # PIPNet's mean face (68 pairs) in flow style
        flow = yaml.safe_dump(publish._plain(tag_builder), default_flow_style=True, width=110).strip()
        lines.append("  builder: " + flow.replace("\n", "\n    "))
    card = yaml.safe_dump(publish._plain(entry), sort_keys=False, default_flow_style=None, width=110)
    lines.append("  weights:")
    lines += ["    " + line for line in card.splitlines()]
    block = "".join(f"{indent}{line}\n" for line in "\n".join(lines).splitlines())
    zoo.write_text(src[:body_start] + block + src[body_end:])
    return zoo


def write_litert(landmarker, weights_file: Path) -> dict:
    """Export ``landmarker``'s LiteRT form beside ``weights_file`` (same stem, ``.tflite``; float32 compute, dynamic
    batch: lmkzoo.export.cache.EXPORT_VARIANT) and return its zoo.yaml ``litert`` entry."""
    from lmkzoo import hub

    target = weights_file.with_name(weights_file.name.replace(".weights.h5", ".tflite"))
    for old in target.parent.glob(f"{landmarker.spec.name}-*.tflite"):
        old.unlink()
    landmarker.export(target, format="tflite", batch_size=None)
    return {"file": f"weights/{target.name}", "sha256": hub.sha256_file(target)}


def litert_only(name: str) -> int:
    """Rewrite the packaged LiteRT form of shipped weights and its ``litert:`` line in their zoo.yaml block."""
    import re

    import lmkzoo
    from lmkzoo.inference.loader import packaged_weights_path
    from lmkzoo.registry import get_spec

    spec = get_spec(name)
    if spec.weights is None or not spec.weights.file:
        raise SystemExit(f"{spec.name} has no weights shipped in the package")
    entry = write_litert(lmkzoo.load(spec.name, runtime="keras"), packaged_weights_path(spec))
    zoo = ROOT / "zoo.yaml"
    src = zoo.read_text()
    a, b = src.find(f"# BEGIN weights {spec.name} "), src.find(f"# END weights {spec.name}\n")
    if a < 0 or b < a:
        raise SystemExit(f"zoo.yaml has no '# BEGIN weights {spec.name}' block")
    block = re.sub(r"\n( +)litert: .*", "", src[a:b])
    block = re.sub(r"\n( +)file: (weights/.*)", lambda m: f"{m.group(0)}\n{m.group(1)}litert: {{file: {entry['file']}, "
                   f"sha256: {entry['sha256']}}}", block, count=1)
    zoo.write_text(src[:a] + block + src[b:])
    print(f"wrote {ROOT / 'lmkzoo' / entry['file']} and its zoo.yaml line", file=sys.stderr)
    return 0


def rescore(name: str, shared: Path, data_dir) -> int:
    """Score shipped weights again (:func:`score`: 300-W Common by both protocols, the dlib faces) and merge the
    numbers into their card's ``metrics`` in zoo.yaml; the weights and every other card field stay as they are."""
    import yaml

    import lmkzoo
    from lmkzoo.registry import get_spec

    spec = get_spec(name)
    if spec.weights is None or not spec.weights.file:
        raise SystemExit(f"{spec.name} has no weights shipped in the package")
    arch, tag = spec.name.split(".", 1)
    entry = dict(yaml.safe_load((ROOT / "zoo.yaml").read_text())["models"][arch]["tags"][tag]["weights"])
    metrics = score(lmkzoo.load(spec.name, runtime="keras"), shared, data_dir)
    entry["metrics"] = {**entry.get("metrics", {}), **metrics}
    print(json.dumps(metrics, indent=1), file=sys.stderr)
    print(f"updated {write_zoo(spec.name, {}, entry)}", file=sys.stderr)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="training run folder (lmkzoo train --out, or tools/train_default_model.py --out)")
    ap.add_argument("--name", required=True, help="zoo arch.tag the run trained")
    ap.add_argument("--data", choices=sorted(DATA), help="what it was trained on (card lineage; required with RUN)")
    ap.add_argument("--litert", action="store_true", help="ship the LiteRT form too (always for the zoo's default)")
    ap.add_argument("--litert-only", action="store_true", help="only (re)write the LiteRT form of shipped weights")
    ap.add_argument("--rescore", action="store_true", help="only score shipped weights again and update their card's metrics")
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--data-dir", default=None, help="TFDS data dir (300-W is built there from --shared if needed)")
    ap.add_argument("--command", help="the command that trained it (default: the run's config)")
    ap.add_argument("--train-seconds", type=float,
                    help="the run's training wall time, for runs resumed by lmkzoo versions whose history counted only "
                         "the last part (now history.json sums every epoch's epoch_seconds)")
    ap.add_argument("--notes", help="card notes (how it differs from the paper, ...)")
    ap.add_argument("--cores", default="shared with other runs",
                    help="what else ran on the cores while it trained, for the card's made_by (e.g. 'nothing else training')")
    ap.add_argument("--write-zoo", action="store_true", help="write the tag's block in zoo.yaml")
    args = ap.parse_args(argv)
    if args.litert_only:
        return litert_only(args.name)
    if args.rescore:
        return rescore(args.name, Path(args.shared), args.data_dir)
    if not args.run or not args.data:
        ap.error("RUN and --data are required (unless --litert-only or --rescore)")

    import lmkzoo
    from lmkzoo import hub
    from lmkzoo.inference.landmarker import Landmarker
    from lmkzoo.inference.loader import build_network
    from lmkzoo.registry import default_model_name, get_spec, validate_weights_entry
    from lmkzoo.training import publish

    run, spec, shared = Path(args.run), get_spec(args.name), Path(args.shared)
    config = json.loads((run / "config.json").read_text())
    history = json.loads((run / "history.json").read_text())
    training_data, data_license = DATA[args.data]
    with tempfile.TemporaryDirectory() as tmp:
        pub = publish.publish(run, name=spec.name, out_dir=tmp, license=WEIGHTS_LICENSE[args.data],
                          data_license=data_license, training_data=training_data, metrics={"pending": 0.0})
        overrides = dict(pub.builder)
        net32 = build_network(spec, **overrides)
        net32.load_weights(str(pub.path))
        half = Path(tmp) / "half.weights.h5"
        to_float16(pub.path, half)
        sha = hub.sha256_file(half)
        target = ROOT / "lmkzoo" / "weights"
        target.mkdir(exist_ok=True)
        final = target / f"{spec.name}-{sha[:8]}.weights.h5"
        for old in target.glob(f"{spec.name}-*.weights.h5"):
            old.unlink()
        shutil.copyfile(half, final)
    net16 = build_network(spec, **overrides)
    net16.load_weights(str(final))
    calibration = validation_covariance_scale(Landmarker(spec, net16), args.data_dir)
    if calibration:  # the factor lives in the tag's builder: every runtime's decode applies it
        overrides["covariance_scale"] = calibration["covariance_scale"]
        net16 = build_network(spec, **overrides)
        net16.load_weights(str(final))
    drift = float16_drift(spec, net32, net16, shared)
    metrics = score(Landmarker(spec, net16), shared, args.data_dir)
    if history.get("val_nme"):
        metrics["300w_validation_nme_selection_slice"] = round(100 * history["val_nme"][-1], 3)
    if calibration:
        metrics["covariance_scale_fitted_on_selection_slice"] = calibration["covariance_scale"]
        metrics["300w_validation_coverage_2sigma_uncalibrated"] = calibration["validation_coverage_2sigma_uncalibrated"]
    epochs, secs = config.get("epochs"), args.train_seconds or history.get("train_seconds", 0)
    init = config.get("backbone_init") or {}
    start = (IMAGENET if init.get("imagenet") else f"fine-tuned from {init['weights']}" if init.get("weights")
             else "from scratch")
    command = args.command or (f"lmkzoo train {spec.name} (config.json: data {config.get('data')}, "
                               f"epochs {epochs}, batch {config.get('batch_size')}, augment {config.get('augment')})")
    entry = dict(pub.entry)
    for k in ("url", "mirrors", "size"):
        entry.pop(k, None)
    entry.update(file=f"weights/{final.name}", sha256=sha, dtype="float16", metrics=metrics,
                 made_by=(f"trained by lmkzoo {lmkzoo.__version__}, {start}: {command}; {epochs} epochs, "
                          f"{secs / 3600:.1f} h of training wall time on 2 CPU cores ({args.cores}); "
                          f"weights stored as float16 (landmark drift vs float32 on the dlib faces: max {drift[0]:.1e}, "
                          f"mean {drift[1]:.1e} of the crop)"),
                 recipe={k: config[k] for k in ("epochs", "batch_size", "augment", "steps_per_epoch", "seed")
                         if k in config})
    if args.notes:
        entry["notes"] = args.notes
    validate_weights_entry(entry, where=f"{spec.name}.weights")
    print(json.dumps({"file": str(final), "bytes": final.stat().st_size, "metrics": metrics}, indent=1), file=sys.stderr)
    litert = args.litert or spec.name == default_model_name()
    if args.write_zoo:
        print(f"updated {write_zoo(spec.name, overrides, entry)}", file=sys.stderr)
        if litert:  # after the card is in zoo.yaml: the LiteRT file's metadata carries the spec with its card
            from lmkzoo import registry

            registry._load.cache_clear()
            return litert_only(spec.name)
    elif litert:
        print("the LiteRT form is written with --write-zoo (its metadata embeds the zoo card)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
