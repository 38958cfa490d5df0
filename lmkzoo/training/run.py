"""The one run folder of every trainer (supervised, self-training, adversarial).

A run folder ``out_dir`` holds ``config.json`` (the run's settings), ``backup/`` (the resume state:
:class:`~lmkzoo.training.backup.TrainingBackup`), ``ckpt/epochNNN.weights.h5``, ``log.csv``, ``tb/``, and at the end
``final.keras``, ``final.weights.h5`` and ``history.json`` (every finished epoch, restarts included). A killed run
started again with the same ``out_dir`` continues at its last finished epoch. Here are the pieces the trainers
share: the data sources, the strategy, the callbacks, the validation metric, the atomic final files.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["STRATEGIES", "make_strategy", "evaluate_network", "resume_callbacks", "check_run_args", "leaves_nothing_on_failure",
           "run_callbacks", "write_config", "write_history", "atomic_save", "is_chief", "train_val_sources", "source",
           "eval_protocol", "evaluation_callback"]

STRATEGIES = ("one_device", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "one_device", *, devices=None, tpu: str | None = None):
    """A ``tf.distribute`` strategy by name.

    ``one_device`` (the first GPU, else the CPU), ``mirrored`` (all local GPUs, else all logical CPUs),
    ``multi_worker`` (MultiWorkerMirroredStrategy; the cluster comes from ``TF_CONFIG``), ``tpu``
    (TPUStrategy on the TPU named by ``tpu`` or the environment's TPU resolver).
    """
    import tensorflow as tf

    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(devices[0] if devices else (gpus[0].name if gpus else "/cpu:0"))
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise InvalidArgumentError("strategy 'multi_worker' needs TF_CONFIG (cluster and task) in the environment")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise InvalidArgumentError(f"unknown strategy {name!r}; allowed: {STRATEGIES}")


def evaluate_network(network, dataset, *, scheme, norm="inter_ocular", serving=None):
    """Per-image NME (image pixels) of ``network`` over an evaluation dataset from ``make_dataset``.

    Returns ``(nmes (N,), predictions (N, K, 2), ground truth (N, K, 2), infos)`` where ``infos`` holds every
    other per-example field of the dataset (subset flags, boxes) concatenated.
    """
    import tensorflow as tf

    from lmkzoo import geometry, metrics

    fn = serving or tf.function(lambda x: network.codec(network(x, training=False)))
    preds, gts, vis, extra = [], [], [], {}
    for images, info in dataset:
        out = fn(images)
        inv = geometry.invert_affine(info["affine"].numpy())
        preds.append(geometry.apply_affine(out["landmarks"].numpy().astype(np.float64), inv))
        gts.append(info["image_landmarks"].numpy())
        vis.append(info["visible"].numpy() > 0.5)
        for k, v in info.items():
            if k not in ("affine", "image_landmarks", "landmarks", "visible"):
                extra.setdefault(k, []).append(v.numpy())
    pred, gt, v = np.concatenate(preds), np.concatenate(gts), np.concatenate(vis)
    infos = {k: np.concatenate(vs) for k, vs in extra.items()}
    boxes = infos.get("bbox") if norm == "bbox" else None
    nmes = metrics.nme(pred, gt, scheme=scheme, norm=norm, visible=v, boxes=boxes)
    return nmes, pred, gt, infos


def evaluation_callback(dataset, scheme, *, norm="inter_ocular", cutoff=0.10, every: int = 1):
    import keras

    from lmkzoo import metrics

    class EvaluationCallback(keras.callbacks.Callback):
        """NME / FR / AUC on a validation set after each ``every`` epochs, into the logs (``val_nme`` ...)."""

        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % every:
                return
            nmes = evaluate_network(self.model, dataset, scheme=scheme, norm=norm)[0]
            vals = {"val_nme": float(np.nanmean(nmes)), "val_fr": metrics.failure_rate(nmes, cutoff),
                    "val_auc": metrics.auc(nmes, cutoff)}
            if logs is not None:
                logs.update(vals)
            print(f"\n  validation: NME {100 * vals['val_nme']:.2f}%  FR@{cutoff} {100 * vals['val_fr']:.1f}%  AUC {vals['val_auc']:.3f}")

    return EvaluationCallback()


def resume_callbacks(backup_dir: Path) -> list:
    """The resume callbacks of a run: one :class:`~lmkzoo.training.backup.TrainingBackup` (model, optimizer and
    seed-generator states, written atomically each epoch; the newest intact state restored at the start)."""
    from lmkzoo.training.backup import TrainingBackup

    return [TrainingBackup(backup_dir)]


def eval_protocol(data, norm=None, cutoff=None):
    """The validation metric's normalisation and FR/AUC cutoff: the dataset's standard protocol
    (:data:`lmkzoo.inference.evaluate.PROTOCOLS`, e.g. JD-landmark's box NME @0.08) unless given; inter-ocular @0.10
    for datasets given as ``tf.data`` objects."""
    from lmkzoo.inference.evaluate import PROTOCOLS

    default = PROTOCOLS.get(data.split("/")[0].split(":")[0], ("inter_ocular", 0.10)) if isinstance(data, str) else (
        "inter_ocular", 0.10)
    return (norm or default[0]), float(cutoff if cutoff is not None else default[1])


def source(data, split, data_dir, manual_dir, shuffle_files=False):
    from lmkzoo.data.pipeline import load_tfds

    return load_tfds(data, split, data_dir=data_dir, shuffle_files=shuffle_files, manual_dir=manual_dir)


def train_val_sources(data, train_split, val_split, data_dir, manual_dir):
    """``(train, val)`` example datasets from a TFDS name (its ``train_split`` / ``val_split``, built from
    ``manual_dir`` first when given), a ``(train, val)`` pair (``val`` may be None) or one dataset."""
    if isinstance(data, str):
        train_src = source(data, train_split, data_dir, manual_dir)
        return train_src, (source(data, val_split, data_dir, None) if val_split else None)
    if isinstance(data, (tuple, list)):
        return tuple(data)
    return data, None


def check_run_args(**values):
    """Refuse run settings that cannot train: ``epochs``, ``batch_size``, ``steps_per_epoch``, ``eval_every`` must be
    positive integers and ``learning_rate`` a finite number >= 0 (0 trains nothing; ``None``: the recipe's value)."""
    for key, value in values.items():
        if value is None:
            continue
        if key == "learning_rate":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
            if not ok:
                raise InvalidArgumentError(f"learning_rate must be a finite number >= 0; got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidArgumentError(f"{key} must be a positive integer; got {value!r}")


def leaves_nothing_on_failure(trainer):
    """Decorate a trainer taking ``out_dir``: when it fails before any training state was saved, the run folder it
    created is removed again (a refused or crashed new run leaves no half-made folder behind; a run folder that
    holds a state to resume from, or that existed before the call, is kept)."""
    signature = inspect.signature(trainer)

    @functools.wraps(trainer)
    def run(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        out = Path(bound.arguments["out_dir"])
        existed = out.exists()
        try:
            return trainer(*args, **kwargs)
        except BaseException:
            from lmkzoo.training.backup import has_resume_state

            if not existed and out.is_dir() and not has_resume_state(out):
                shutil.rmtree(out, ignore_errors=True)
            raise

    return run


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def atomic_save(network, path: Path, weights_only: bool = False):
    """Write to a temporary file in the same folder, then rename: never a half-written model file."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    if weights_only:
        network.save_weights(str(tmp))
    else:
        network.save(str(tmp))
    os.replace(tmp, path)


def spec_of(name):
    """The ``ModelSpec`` a trainer was given: a spec as it is (e.g. with a changed input size), a name from the zoo."""
    from lmkzoo.registry import get_spec

    return name if hasattr(name, "family") else get_spec(name)


def run_callbacks(work: Path, backup, *, val_ds=None, scheme=None, norm="inter_ocular", cutoff=0.10, every: int = 1,
                  callbacks=None) -> list:
    """The callbacks of a run in ``work``: the validation metric (when ``val_ds``), the resume state ``backup``, the
    CSV and TensorBoard logs, the per-epoch weights in ``ckpt/``, then the caller's ``callbacks``."""
    import keras

    from lmkzoo.training.backup import EpochSeconds

    (work / "ckpt").mkdir(parents=True, exist_ok=True)
    cbs = [
        EpochSeconds(),
        backup,
        keras.callbacks.CSVLogger(str(work / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(work / "tb"), write_graph=False, profile_batch=0),
        keras.callbacks.ModelCheckpoint(str(work / "ckpt" / "epoch{epoch:03d}.weights.h5"), save_weights_only=True),
    ]
    if val_ds is not None:
        cbs.insert(0, evaluation_callback(val_ds, scheme, norm=norm, cutoff=cutoff, every=every))
    return cbs + list(callbacks or [])


def write_config(work: Path, config: dict) -> None:
    """``config.json``: the run's settings (what ``tools/ship_model.py`` and ``publish`` read back)."""
    (work / "config.json").write_text(json.dumps(config, indent=2, default=str))


def history_of(backup, history, **extra) -> dict:
    """The run's per-epoch logs: every finished epoch, those before a restart included (Keras' ``history`` holds
    only this call's), plus ``extra`` values. ``train_seconds`` is the sum of the epochs' ``epoch_seconds`` when
    every epoch has one (a resumed run's whole training time, not just its last part)."""
    hist = {k: [float(v) for v in vs] for k, vs in (backup.history or history.history).items()}
    hist.update(extra)
    per_epoch = hist.get("epoch_seconds")
    if "train_seconds" in extra and per_epoch and len(per_epoch) == len(hist.get("loss", per_epoch)):
        hist["train_seconds"] = float(sum(per_epoch))
    return hist


def write_history(out: Path, hist: dict) -> None:
    (out / "history.json").write_text(json.dumps(hist, indent=2))
