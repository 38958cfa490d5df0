"""Ship a trained run as lmkzoo's embedded default model: float16 weights inside the package + its model card.

    python tools/embed_default_model.py runs/pipnet_lite --write-zoo   # or without: print the zoo.yaml lines
    python tools/embed_default_model.py --litert-only                  # only the packaged LiteRT form

1. ``lmkzoo.hub.publish`` checks the run (config, history) and writes its float32 ``.weights.h5``, rebuilt
   exactly as ``lmkzoo.load`` rebuilds the model (the run's mean face becomes the tag's ``builder``).
2. The file is rewritten with every float array stored as float16 (half the size; Keras casts back to float32
   on load) into ``lmkzoo/weights/``, and the float16 model is checked against the float32 one.
3. The LiteRT form of those weights (the float32 serving graph with a dynamic batch, decoding included) is written
   beside them, so that ``lmkzoo.load()`` predicts on LiteRT without importing TensorFlow (lmkzoo.export.cache).
   ``--litert-only`` rewrites just that file and its zoo.yaml line for the weights already embedded (after a change
   to the serving graph or the codec).
4. Both are evaluated on shared/data/faces68_dlib (never used for training; reference points from dlib's
   predictor) through the ``predict`` path: the built-in detector, and the tight reference box ("oracle").
   The LFW validation people give the monitoring NME (LFW is not a test set: shared/data/lfw_faces/SOURCE.md).
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
BEGIN = "      # BEGIN embedded weights (written by tools/embed_default_model.py --write-zoo)\n"
END = "      # END embedded weights\n"

TRAINING_DATA = (
    "LFW (Labeled Faces in the Wild, UMass Amherst) subset of GitHub osbo8060/FaceAnchorDataset: 3,733 250x250 face "
    "crops of 158 people (FaceTorch marks removed by inpainting), 90 % of the people for training; 68-point pseudo-labels "
    "from MediaPipe FaceMesh 0.10.14 (468 mesh vertices mapped to iBUG-68 by a fit on dlib's example faces), "
    "lmkzoo shared/data/lfw_faces/teacher68.csv, see its TEACHER.md and SOURCE.md"
)
DATA_LICENSE = (
    "LFW images: released by UMass Amherst for research, no explicit licence (photos of public figures from news "
    "sources); teacher labels: outputs of MediaPipe FaceMesh (Apache-2.0). Check the images' terms before commercial use."
)

#: the teacher's own NME on the dlib faces (shared/data/lfw_faces/TEACHER.md): in-sample, since its 468 → 68 mapping
#: was fitted on these 43 faces, and leave-one-image-out
TEACHER_METRICS = {"teacher_faces68_dlib_nme_in_sample": 5.28, "teacher_faces68_dlib_nme_leave_one_out": 5.41}


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


def renamed_transpose_groups(src: Path, dst: Path) -> bool:
    """Copy a ``.weights.h5`` written when PIPNet's ``deconv1`` was a plain ``Conv2DTranspose`` (the default run was
    started before :class:`~lmkzoo.models.layers.SubPixelConv2DTranspose`, same weights, took its place): Keras
    stores a layer's variables under its class's snake-case name, so ``layers/conv2d_transpose*`` becomes
    ``layers/sub_pixel_conv2d_transpose*``. Returns whether anything was renamed."""
    import h5py

    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        old = [k for k in f["layers"].keys() if k.startswith("conv2d_transpose")]
        for k in old:
            f["layers"].move(k, "sub_pixel_" + k)
    return bool(old)


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
    """Rewrite the packaged LiteRT form of the embedded weights and its ``litert:`` line in zoo.yaml."""
    import re

    import lmkzoo
    from lmkzoo.registry import get_spec
    from lmkzoo.tasks.loader import packaged_weights_path

    spec = get_spec(name)
    entry = write_litert(lmkzoo.load(spec.name, runtime="keras"), packaged_weights_path(spec))
    zoo = ROOT / "zoo.yaml"
    src = zoo.read_text()
    a, b = src.find(BEGIN), src.find(END)
    block = src[a:b]
    line = f"          litert: {{file: {entry['file']}, sha256: {entry['sha256']}}}\n"
    block = re.sub(r"          litert: .*\n", "", block)
    block = re.sub(r"(          file: weights/.*\n)", lambda m: m.group(1) + line, block, count=1)
    zoo.write_text(src[:a] + block + src[b:])
    print(f"wrote {ROOT / 'lmkzoo' / entry['file']} and its zoo.yaml line", file=sys.stderr)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="training run folder (tools/train_default_model.py --out)")
    ap.add_argument("--litert-only", action="store_true", help="only (re)write the packaged LiteRT form")
    ap.add_argument("--name", default="pipnet_lite.lfw")
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--write-zoo", action="store_true", help="replace the tag's block in zoo.yaml (between its markers)")
    args = ap.parse_args(argv)
    if args.litert_only:
        return litert_only(args.name)
    if not args.run:
        ap.error("give the training run folder (or --litert-only)")

    import lmkzoo
    from eval_faces68_dlib import evaluate, load_faces
    from lmkzoo import hub
    from lmkzoo.registry import get_spec
    from lmkzoo.tasks.landmarker import Landmarker
    from lmkzoo.tasks.loader import build_network

    run = Path(args.run)
    spec = get_spec(args.name)
    config = json.loads((run / "config.json").read_text())
    history = json.loads((run / "history.json").read_text())
    faces = load_faces(Path(args.shared) / "faces68_dlib")
    with tempfile.TemporaryDirectory() as tmp:
        if (run / "final.weights.h5").is_file():  # publish from the weights (the run's final.keras names the old layer)
            staged = Path(tmp) / "run"
            staged.mkdir()
            for f in ("config.json", "history.json"):
                shutil.copyfile(run / f, staged / f)
            renamed_transpose_groups(run / "final.weights.h5", staged / "final.weights.h5")
            run = staged
        pub = hub.publish(run, name=spec.name, out_dir=tmp, license="Apache-2.0", data_license=DATA_LICENSE,
                          training_data=TRAINING_DATA, metrics={"placeholder": 0.0})
        overrides = dict(pub.builder)
        net32 = build_network(spec, **overrides)
        net32.load_weights(str(pub.path))
        target_dir = ROOT / "lmkzoo" / "weights"
        target_dir.mkdir(exist_ok=True)
        half = Path(tmp) / "half.weights.h5"
        to_float16(pub.path, half)
        sha = hub.sha256_file(half)
        final = target_dir / f"{spec.name}-{sha[:8]}.weights.h5"
        for old in target_dir.glob(f"{spec.name}-*.weights.h5"):
            old.unlink()
        shutil.copyfile(half, final)
    net16 = build_network(spec, **overrides)
    net16.load_weights(str(final))
    litert = write_litert(Landmarker(spec, net16), final)
    res32 = evaluate(Landmarker(spec, net32), faces)
    res16 = evaluate(Landmarker(spec, net16), faces)
    val = [v for v in history.get("val_nme", [])]
    metrics = {
        "faces68_dlib_nme_detector": round(res16["detector"]["nme_percent"], 3),
        "faces68_dlib_nme_oracle_box": round(res16["oracle"]["nme_percent"], 3),
        "faces68_dlib_faces_found": res16["detector"]["faces_found"],
        "lfw_validation_nme_monitoring_only": round(100 * val[-1], 3) if val else None,
        **TEACHER_METRICS,
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    entry = dict(pub.entry)
    for k in ("url", "mirrors", "size"):
        entry.pop(k, None)
    entry.update(file=f"weights/{final.name}", sha256=sha, dtype="float16", litert=litert, metrics=metrics,
                 made_by=(f"trained from scratch by lmkzoo {lmkzoo.__version__} with tools/train_default_model.py (the "
                          f"zoo recipe: {config.get('epochs')} epochs, batch {config.get('batch_size')}, "
                          f"{config.get('augment')} augmentation, seed {config.get('seed')}, "
                          f"{history.get('train_seconds', 0) / 3600:.1f} h on 2 CPU cores); weights stored as float16"))
    import yaml

    from lmkzoo.registry import validate_weights_entry

    validate_weights_entry(entry, where=f"{spec.name}.weights")
    print(f"float32 vs float16 on faces68_dlib: {json.dumps({'fp32': res32, 'fp16': res16}, indent=1)}", file=sys.stderr)
    print(f"wrote {final} ({final.stat().st_size} bytes)", file=sys.stderr)
    # the builder (PIPNet's mean face: 68 pairs) in flow style, the model card in block style
    builder = yaml.safe_dump(hub._plain(overrides), default_flow_style=True, width=110).strip()
    card = yaml.safe_dump(hub._plain(entry), sort_keys=False, default_flow_style=None, width=110)
    text = (f"{spec.tag}:\n  scheme: {spec.scheme}\n  builder: " + builder.replace("\n", "\n    ") + "\n  weights:\n"
            + "".join("    " + line + "\n" for line in card.splitlines()))
    block = "".join("      " + line + "\n" for line in text.splitlines())
    if args.write_zoo:
        zoo = ROOT / "zoo.yaml"
        src = zoo.read_text()
        a, b = src.find(BEGIN), src.find(END)
        if a < 0 or b < a:
            raise SystemExit(f"zoo.yaml has no '{BEGIN.strip()}' ... '{END.strip()}' block to replace")
        zoo.write_text(src[: a + len(BEGIN)] + block + src[b:])
        print(f"updated {zoo}", file=sys.stderr)
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
