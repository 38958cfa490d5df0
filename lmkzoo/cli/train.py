"""``lmkzoo train``: train a zoo model with its recipe into a (resumable) run folder."""

from __future__ import annotations

import json
import sys

from lmkzoo.cli._args import _count, _count0, _positive

EXAMPLES = {
    "train": "lmkzoo train pipnet_lite --data landmark_folder/lfw_teacher68 --manual-dir shared/data/lfw_faces --out runs/lite",
}


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
                    imagenet_weights=args.imagenet_weights, backbone_init=args.backbone_init,
                    verbose=1 if sys.stdout.isatty() else 2)
    last = {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v}
    # one JSON line after Keras' epoch lines
    print(json.dumps({"out": args.out, "train_seconds": round(hist["train_seconds"], 1), "last_epoch": last}))
    return 0


def register(add) -> None:
    """Register ``train`` through ``add(name, help, handler)``."""
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
    sp.add_argument("--backbone-init", choices=["imagenet", "none"],
                    help="the backbone's start instead of the recipe's backbone_init (none: random weights)")
    sp.add_argument("--out", default="runs/train", help="run folder; started again with the same folder, a run resumes")
