"""Train lmkzoo's embedded default model (zoo.yaml ``pipnet_lite``) on the shared faces.

``--data 300w+lfw`` (the ``pipnet_lite.300w_lfw`` default): fine-tunes the LFW model (``--init pipnet_lite.lfw``)
on 300-W's human annotations (``ibug_300w`` ``train[:90%]``, shared/data/ibug_300w, seen ``--repeat-300w`` times an
epoch) plus the LFW training people with teacher labels; the per-epoch validation NME is 300-W ``train[90%:]``
(the model-selection slice; the Common test is scored once, after training).

``--data lfw`` (``pipnet_lite.lfw``, the first default):

The LFW crops (shared/data/lfw_faces, 250x250) carry MediaPipe FaceMesh pseudo-labels mapped to iBUG-68
(``teacher68.csv``, see its TEACHER.md). The ``landmark_folder/lfw_teacher68`` TFDS config holds out 10 % of
the *people* as ``validation`` (used for monitoring only: lfw_faces/SOURCE.md asks not to report LFW numbers).
The run resumes where it stopped when started again with the same ``--out`` (Keras BackupAndRestore, and a
deterministic input stream), so it can be killed at any time.

    python tools/train_default_model.py --model pipnet_lite.300w_lfw --data 300w+lfw --init pipnet_lite.lfw \
        --out runs/pipnet_lite_300w_lfw
    python tools/train_default_model.py --model pipnet_lite.lfw --data lfw --out runs/pipnet_lite   # ~1 min/epoch

Then evaluate on shared/data/faces68_dlib (tools/eval_faces68_dlib.py runs/pipnet_lite/final.keras) and
ship the weights into the package (tools/ship_model.py RUN --name NAME --data 300w+lfw --write-zoo).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def shared_lfw() -> Path:
    from lmkzoo.testing.lfw import require_shared_data

    try:
        return require_shared_data() / "lfw_faces"
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None


def mixed_300w_lfw(data_dir, repeat_300w: int = 2):
    """``(train, validation)`` example datasets: 300-W ``train[:90%]`` x ``repeat_300w`` + LFW teacher ``train``;
    300-W ``train[90%:]``. Only the fields both builders have are kept."""
    from lmkzoo.training.run import source

    shared = shared_lfw().parent
    keys = ("image", "landmarks", "visible", "bbox")

    def common(ds):
        return ds.map(lambda ex: {k: ex[k] for k in keys})

    ibug = common(source("ibug_300w", "train[:90%]", data_dir, shared / "ibug_300w"))
    lfw = common(source("landmark_folder/lfw_teacher68", "train", data_dir, shared / "lfw_faces"))
    train = ibug.repeat(repeat_300w).concatenate(lfw)
    return train, common(source("ibug_300w", "train[90%:]", data_dir, None))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pipnet_lite.300w_lfw")
    ap.add_argument("--data", default="300w+lfw", choices=["300w+lfw", "lfw"])
    ap.add_argument("--init", default="pipnet_lite.lfw", help="weights to fine-tune (zoo name or file); 'none': from scratch")
    ap.add_argument("--repeat-300w", type=int, default=2, help="300-W faces per epoch = this x 1,811")
    ap.add_argument("--out", default="runs/pipnet_lite")
    ap.add_argument("--data-dir", default="runs/tfds", help="TFDS data dir for the built LFW dataset")
    ap.add_argument("--manual-dir", default=None, help="shared/data/lfw_faces (found automatically)")
    ap.add_argument("--epochs", type=int, default=None, help="default: the zoo recipe's")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--learning-rate", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity (1: progress bar, 2: a line per epoch)")
    args = ap.parse_args(argv)

    from lmkzoo.training.train import train

    if args.data == "lfw":
        data, manual = "landmark_folder/lfw_teacher68", Path(args.manual_dir) if args.manual_dir else shared_lfw()
    else:
        data, manual = mixed_300w_lfw(args.data_dir, args.repeat_300w), None
    _, hist = train(args.model, data=data, data_dir=args.data_dir, manual_dir=manual, out_dir=args.out,
                    epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                    verbose=args.verbose, init_weights=None if args.init == "none" else args.init)
    last = {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v}
    print(json.dumps({"out": args.out, "train_seconds": hist["train_seconds"], "last_epoch": last}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
