"""Train lmkzoo's embedded default model (zoo.yaml ``pipnet_lite.lfw``) on the shared LFW faces.

The LFW crops (shared/data/lfw_faces, 250x250) carry MediaPipe FaceMesh pseudo-labels mapped to iBUG-68
(``teacher68.csv``, see its TEACHER.md). The ``landmark_folder/lfw_teacher68`` TFDS config holds out 10 % of
the *people* as ``validation`` (used for monitoring only: lfw_faces/SOURCE.md asks not to report LFW numbers).
The run resumes where it stopped when started again with the same ``--out`` (Keras BackupAndRestore, and a
deterministic input stream), so it can be killed at any time.

    python tools/train_default_model.py --out runs/pipnet_lite          # ~1 min per epoch on 2 CPU cores
    python tools/train_default_model.py --out runs/pipnet_lite --epochs 3   # a smoke run

Then evaluate on shared/data/faces68_dlib (tools/eval_faces68_dlib.py runs/pipnet_lite/final.keras) and
publish the weights into the package (tools/embed_default_model.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def shared_lfw() -> Path:
    from lmkzoo.testing.lfw import find_shared_data

    shared = find_shared_data()
    if shared is None:
        raise SystemExit("shared/data/lfw_faces not found: set LMKZOO_SHARED_DATA")
    return shared / "lfw_faces"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pipnet_lite.lfw")
    ap.add_argument("--out", default="runs/pipnet_lite")
    ap.add_argument("--data-dir", default="runs/tfds", help="TFDS data dir for the built LFW dataset")
    ap.add_argument("--manual-dir", default=None, help="shared/data/lfw_faces (found automatically)")
    ap.add_argument("--epochs", type=int, default=None, help="default: the zoo recipe's")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--learning-rate", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity (1: progress bar, 2: a line per epoch)")
    args = ap.parse_args(argv)

    from lmkzoo.tasks.train import train

    manual = Path(args.manual_dir) if args.manual_dir else shared_lfw()
    _, hist = train(args.model, data="landmark_folder/lfw_teacher68", data_dir=args.data_dir, manual_dir=manual,
                    out_dir=args.out, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                    seed=args.seed, verbose=args.verbose)
    last = {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v}
    print(json.dumps({"out": args.out, "train_seconds": hist["train_seconds"], "last_epoch": last}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
