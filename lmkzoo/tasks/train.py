"""The training entry point: a zoo recipe → data pipeline + codec + optimizer + schedule → Keras ``fit``.

``train(name, data=..., ...)`` builds the network (PIPNet's mean face comes from the training split), the
family's tf.data preset, the recipe's optimizer and step schedule, and runs ``fit`` with per-epoch
checkpoints and ``BackupAndRestore`` (a killed run resumes at its last finished epoch), a CSV log,
TensorBoard logs and an evaluation callback (NME / FR / AUC on a validation split, in image pixels).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["train", "evaluate_network", "build_optimizer", "EvaluationCallback"]


def build_optimizer(recipe: dict, steps_per_epoch: int, *, learning_rate: float | None = None, epochs: int | None = None):
    """The recipe's optimizer with its learning-rate schedule (step decay at epoch boundaries)."""
    import keras

    opt = dict(recipe.get("optimizer") or {"name": "adam", "learning_rate": 1e-3})
    sched = dict(recipe.get("schedule") or {})
    lr = float(learning_rate if learning_rate is not None else opt.get("learning_rate", 1e-3))
    total = int(epochs if epochs is not None else recipe.get("epochs", 1))
    if sched.get("name", "constant") == "step":
        bounds = [int(b) for b in sched.get("boundaries_epochs", [])]
        if epochs is not None and recipe.get("epochs"):
            # a shortened run keeps the recipe's decay points at the same fraction of training
            bounds = [max(1, round(b * total / int(recipe["epochs"]))) for b in bounds]
        factor = float(sched.get("factor", 0.1))
        bounds = sorted(b for b in bounds if 0 < b < total)
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            [b * steps_per_epoch for b in bounds], [lr * factor**i for i in range(len(bounds) + 1)]
        ) if bounds else lr
    elif sched.get("name", "constant") == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(lr, total * steps_per_epoch, alpha=float(sched.get("alpha", 0.01)))
    elif sched.get("name", "constant") == "constant":
        schedule = lr
    else:
        raise InvalidArgumentError(f"unknown schedule {sched.get('name')!r}; allowed: step, cosine, constant")
    name = opt.get("name", "adam").lower()
    wd = opt.get("weight_decay") or None
    if name == "adam":
        return keras.optimizers.Adam(schedule) if not wd else keras.optimizers.AdamW(schedule, weight_decay=float(wd))
    if name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=float(wd or 1e-4))
    if name == "lamb":
        return keras.optimizers.Lamb(schedule, weight_decay=wd)
    if name == "rmsprop":
        # Keras divides by sqrt(v + eps), torch by sqrt(v) + eps: a torch recipe's eps (``torch_epsilon``) maps
        # to eps² inside the root (equal up to O(eps) in the denominator)
        eps = float(opt["torch_epsilon"]) ** 2 if "torch_epsilon" in opt else float(opt.get("epsilon", 1e-8))
        return keras.optimizers.RMSprop(schedule, rho=float(opt.get("rho", 0.99)), epsilon=eps,
                                        momentum=float(opt.get("momentum", 0.0)))
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=float(opt.get("momentum", 0.9)), weight_decay=wd)
    raise InvalidArgumentError(f"unknown optimizer {name!r}; allowed: adam, adamw, lamb, rmsprop, sgd")


def evaluate_network(network, dataset, *, scheme, norm="inter_ocular", serving=None):
    """Per-image NME (image pixels) of ``network`` over an evaluation dataset from ``make_dataset``.

    Returns ``(nmes (N,), predictions (N, K, 2), ground truth (N, K, 2))``.
    """
    import tensorflow as tf

    from lmkzoo import geometry, metrics

    fn = serving or tf.function(lambda x: network.codec(network(x, training=False)))
    preds, gts, vis = [], [], []
    for images, info in dataset:
        out = fn(images)
        inv = geometry.invert_affine(info["affine"].numpy())
        preds.append(geometry.apply_affine(out["landmarks"].numpy().astype(np.float64), inv))
        gts.append(info["image_landmarks"].numpy())
        vis.append(info["visible"].numpy() > 0.5)
    pred, gt, v = np.concatenate(preds), np.concatenate(gts), np.concatenate(vis)
    # visibility from the eval crop is permuted only under flips (none at evaluation): use it as is
    nmes = metrics.nme(pred, gt, scheme=scheme, norm=norm, visible=v)
    return nmes, pred, gt


def _evaluation_callback_cls():
    import keras

    class EvaluationCallback(keras.callbacks.Callback):
        """NME / FR / AUC on a validation set after each epoch, written into the logs (``val_nme`` ...)."""

        def __init__(self, dataset, scheme, *, norm="inter_ocular", cutoff=0.08, every: int = 1):
            super().__init__()
            self.dataset, self.scheme, self.norm, self.cutoff, self.every = dataset, scheme, norm, cutoff, every

        def on_epoch_end(self, epoch, logs=None):
            from lmkzoo import metrics

            if (epoch + 1) % self.every:
                return
            nmes, _, _ = evaluate_network(self.model, self.dataset, scheme=self.scheme, norm=self.norm)
            if logs is not None:
                logs["val_nme"] = float(np.nanmean(nmes))
                logs["val_fr"] = metrics.failure_rate(nmes, self.cutoff)
                logs["val_auc"] = metrics.auc(nmes, self.cutoff)
            print(f"\n  validation: NME {100 * np.nanmean(nmes):.2f}%  FR@{self.cutoff} {100 * metrics.failure_rate(nmes, self.cutoff):.1f}%  "
                  f"AUC {metrics.auc(nmes, self.cutoff):.3f}")

    return EvaluationCallback


def __getattr__(name):
    if name == "EvaluationCallback":
        return _evaluation_callback_cls()
    raise AttributeError(name)


def train(name: str, *, data, data_dir=None, train_split: str = "train", val_split: str | None = "validation",
          out_dir="runs/train", epochs: int | None = None, batch_size: int | None = None,
          learning_rate: float | None = None, augment=None, builder_overrides: dict | None = None,
          steps_per_epoch: int | None = None, verbose: int | str = "auto", seed: int = 0, manual_dir=None):
    """Train zoo model ``name`` on a TFDS dataset.

    Args:
        name: ``arch[.tag]``.
        data: TFDS name (``"landmark_folder/lfw_teacher68"``) or a ``(train_ds, val_ds)`` pair of example datasets.
        out_dir: checkpoints (``ckpt/``), ``backup/`` (resume), ``log.csv``, ``tb/``, ``final.keras``, ``final.weights.h5``.
        epochs, batch_size, learning_rate, augment: override the zoo recipe.
        builder_overrides: override zoo ``builder`` arguments (e.g. ``{"backbone_args": {"width_multiplier": 0.5}}``).
    Returns:
        ``(network, history_dict)``.
    """
    import keras
    import tensorflow as tf

    from lmkzoo.data.pipeline import compute_meanface, load_tfds, make_dataset
    from lmkzoo.registry import get_spec
    from lmkzoo.tasks.families import get_family
    from lmkzoo.tasks.loader import build_network

    keras.utils.set_random_seed(seed)
    spec = get_spec(name)
    family = get_family(spec.family)
    recipe = dict(spec.recipe)
    epochs = int(epochs or recipe.get("epochs", 1))
    batch_size = int(batch_size or recipe.get("batch_size", 16))
    augment = augment if augment is not None else recipe.get("augment", family.augment_preset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    if isinstance(data, str):
        kw = {}
        if manual_dir is not None:
            import tensorflow_datasets as tfds

            import datasets_tfds  # noqa: F401

            b = tfds.builder(data, data_dir=data_dir)
            b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
        train_src = load_tfds(data, train_split, data_dir=data_dir, shuffle_files=True, **kw)
        val_src = load_tfds(data, val_split, data_dir=data_dir) if val_split else None
    else:
        train_src, val_src = data

    overrides = dict(builder_overrides or {})
    if spec.family == "pipnet" and "meanface" not in overrides:
        mf = compute_meanface(train_src, crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme)
        overrides["meanface"] = mf.round(6).tolist()
    network = build_network(spec, **overrides)
    n_train = int(train_src.cardinality().numpy()) if train_src.cardinality().numpy() > 0 else None
    if steps_per_epoch is None:
        if n_train is None:
            raise InvalidArgumentError("cannot infer steps_per_epoch from a dataset of unknown size; pass steps_per_epoch")
        steps_per_epoch = max(1, n_train // batch_size)
    common = dict(crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean, std=spec.std)
    train_ds = make_dataset(train_src, codec=network.codec, training=True, batch_size=batch_size, augment=augment,
                            repeat=True, seed=seed, **common)
    optimizer = build_optimizer(recipe, steps_per_epoch, learning_rate=learning_rate, epochs=epochs)
    network.compile(optimizer=optimizer, loss=family.default_loss(spec, network))

    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(out / "tb"), write_graph=False, profile_batch=0),
    ]
    if val_src is not None:
        val_ds = make_dataset(val_src, training=False, batch_size=batch_size, **common)
        callbacks.insert(0, _evaluation_callback_cls()(val_ds, spec.scheme))
    (out / "ckpt").mkdir(exist_ok=True)
    callbacks.append(keras.callbacks.ModelCheckpoint(str(out / "ckpt" / "epoch{epoch:03d}.weights.h5"), save_weights_only=True))
    (out / "config.json").write_text(json.dumps({
        "model": spec.name, "data": data if isinstance(data, str) else "<datasets>", "epochs": epochs,
        "batch_size": batch_size, "learning_rate": learning_rate, "augment": augment, "builder_overrides": overrides,
        "steps_per_epoch": steps_per_epoch, "seed": seed,
    }, indent=2, default=str))
    t0 = time.time()
    history = network.fit(train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)
    network.zoo_spec = spec.to_dict()
    _atomic_save(network, out / "final.keras")
    _atomic_save(network, out / "final.weights.h5", weights_only=True)
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    hist["train_seconds"] = time.time() - t0
    (out / "history.json").write_text(json.dumps(hist, indent=2))
    return network, hist


def _atomic_save(network, path: Path, weights_only: bool = False):
    """Write to a temporary file in the same folder, then rename: never a half-written model file."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    if weights_only:
        network.save_weights(str(tmp))
    else:
        network.save(str(tmp))
    os.replace(tmp, path)
