"""Train a zoo model on 300-W's human annotations exactly as the shipped ``*.300w`` weights were trained.

    python tools/train_300w.py pipnet_mnv2.300w --out runs/pipnet_mnv2.300w      # resumable: run it again
    python tools/train_300w.py --list                                             # the models and their commands

Every run is ``lmkzoo train NAME`` with the zoo recipe and:

* ``--data ibug_300w`` built from shared/data/ibug_300w (2,012 training faces, the 554 Common test faces);
* ``--train-split 'train[:90%]' --val-split 'train[90%:]'``: TFDS writes the examples in a fixed hashed order, so
  the last 10 % (201 faces) are a fixed random slice, held out for model selection (the per-epoch validation NME);
  the Common test is scored once, when a finished model is shipped (tools/ship_model.py);
* ``--imagenet-weights shared/pretrained/tf2_mobilenet_v2_1.0_224_ptq.tflite`` for recipes with
  ``backbone_init: imagenet`` (MobileNetV2 backbones: lmkzoo.convert.mobilenet_v2_tflite);
* ``--unlabeled landmark_folder/lfw_teacher68`` for adversarial recipes (LaplaceKL+D): the 3,366 LFW faces of its
  ``train`` split (shared/data/lfw_faces, built first) as the unlabelled set in place of the paper's MegaFace. Only
  their images reach the training: the teacher's points place the crop (their five points, as the paper's MTCNN
  detector does for MegaFace), never a target.

Extra arguments after ``--`` go to ``lmkzoo train`` (e.g. ``-- --epochs 2 --steps-per-epoch 3`` for a smoke run).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGENET_FILE = "tf2_mobilenet_v2_1.0_224_ptq.tflite"
MODELS = ("pipnet_r18.300w", "pipnet_mnv2.300w", "heatmap_mnv2_sdd.300w", "lotr_m.300w", "cnn_ffn_m.300w",
          "laplacekl_rcn.300w", "laplacekl_rcn.300w_quarter", "laplacekl_rcn_d.300w_quarter", "uglli_hg.300w_cpu")
UNLABELED = "landmark_folder/lfw_teacher68"


def command(name: str, shared: Path, out: str, data_dir: str | None = None, extra=()) -> list[str]:
    """The ``lmkzoo train`` arguments that train ``name`` on 300-W."""
    from lmkzoo.registry import get_spec

    spec = get_spec(name)
    args = ["train", spec.name, "--data", "ibug_300w", "--manual-dir", str(shared / "ibug_300w"),
            "--train-split", "train[:90%]", "--val-split", "train[90%:]", "--out", out]
    if data_dir:
        args += ["--data-dir", data_dir]
    if spec.recipe.get("backbone_init") == "imagenet":
        args += ["--imagenet-weights", str(shared.parent / "pretrained" / IMAGENET_FILE)]
    if spec.recipe.get("adversarial"):
        args += ["--unlabeled", UNLABELED]
    return args + list(extra)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", choices=MODELS)
    ap.add_argument("--out", help="run folder (default runs/NAME)")
    ap.add_argument("--data-dir", help="TFDS data dir (default ~/tensorflow_datasets)")
    ap.add_argument("--shared", help="the shared data folder (default: $LMKZOO_SHARED_DATA or ../shared/data)")
    ap.add_argument("--list", action="store_true", help="print each model's command")
    args = ap.parse_args(argv)

    from lmkzoo.testing.lfw import find_shared_data

    shared = Path(args.shared) if args.shared else find_shared_data()
    if shared is None or not (shared / "ibug_300w").is_dir():
        raise SystemExit("shared/data/ibug_300w not found: pass --shared or set LMKZOO_SHARED_DATA")
    if args.list or not args.name:
        for name in MODELS:
            print("lmkzoo " + shlex.join(command(name, shared, f"runs/{name}", args.data_dir)))
        return 0
    from lmkzoo.cli import main as cli
    from lmkzoo.registry import get_spec

    if get_spec(args.name).recipe.get("adversarial"):  # build the unlabelled LFW faces' TFDS dataset first
        from lmkzoo.training.run import source

        source(UNLABELED, "train", args.data_dir, shared / "lfw_faces")
    return cli(command(args.name, shared, args.out or f"runs/{args.name}", args.data_dir, extra))


if __name__ == "__main__":
    sys.exit(main())
