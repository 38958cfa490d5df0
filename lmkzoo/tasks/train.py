"""The training entry point: a zoo recipe → data pipeline + codec + optimizer + schedule → Keras ``fit``.

``train(name, data=..., ...)`` builds, inside the chosen ``tf.distribute`` strategy's scope, the network
(PIPNet's mean face comes from the training split), the family's tf.data preset and codec, the recipe's
optimizer and learning-rate schedule, and runs ``fit`` with:

* ``BackupAndRestore`` (model + optimizer state every epoch): a killed run started again with the same
  ``out_dir`` continues at its last finished epoch. The input stream is a deterministic function of
  (seed, epoch, index) (:func:`lmkzoo.data.pipeline.make_dataset`), so the resumed run sees the very batches
  the uninterrupted run would, and ends with the same weights within float tolerance;
* per-epoch weight checkpoints, a CSV log, TensorBoard logs, a progress bar;
* an evaluation callback on a validation split (NME / FR / AUC in image pixels).

Distributed input: the pipeline is built per input pipeline (worker) with
``strategy.distribute_datasets_from_function``: each worker reads its shard of the source and batches by
replica (global batch / replicas). BatchNorm layers are synchronised across replicas, so mirrored training
matches one-device training with the same global batch.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["train", "evaluate_network", "build_optimizer", "make_strategy", "STRATEGIES"]

STRATEGIES = ("one_device", "mirrored", "multi_worker", "tpu")


def build_optimizer(recipe: dict, steps_per_epoch: int, *, learning_rate: float | None = None, epochs: int | None = None):
    """The recipe's optimizer with its learning-rate schedule (step decay at epoch boundaries, or cosine)."""
    import keras

    opt = dict(recipe.get("optimizer") or {"name": "adam", "learning_rate": 1e-3})
    sched = dict(recipe.get("schedule") or {})
    lr = float(learning_rate if learning_rate is not None else opt.get("learning_rate", 1e-3))
    total = int(epochs if epochs is not None else recipe.get("epochs", 1))
    kind = sched.get("name", "constant")
    if kind == "step":
        bounds = [int(b) for b in sched.get("boundaries_epochs", [])]
        if epochs is not None and recipe.get("epochs") and int(recipe["epochs"]) != total:
            # a shortened run keeps the recipe's decay points at the same fraction of training
            bounds = [max(1, round(b * total / int(recipe["epochs"]))) for b in bounds]
        factor = float(sched.get("factor", 0.1))
        bounds = sorted(b for b in bounds if 0 < b < total)
        # PiecewiseConstantDecay keeps values[i] while step <= boundary: "- 1" makes the first step of epoch b
        # (optimizer iteration b * steps_per_epoch) the first at the decayed rate
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            [b * steps_per_epoch - 1 for b in bounds], [lr * factor**i for i in range(len(bounds) + 1)]
        ) if bounds else lr
    elif kind == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(lr, total * steps_per_epoch, alpha=float(sched.get("alpha", 0.01)))
    elif kind == "constant":
        schedule = lr
    else:
        raise InvalidArgumentError(f"unknown schedule {kind!r}; allowed: step, cosine, constant")
    name = opt.get("name", "adam").lower()
    wd = opt.get("weight_decay") or None
    if name == "adam":
        # PyTorch ``Adam(weight_decay=wd)`` (the papers' recipes): L2 coupled to the gradient, not AdamW's decay
        from lmkzoo.tasks.optimizers import AdamL2

        return keras.optimizers.Adam(schedule) if not wd else AdamL2(schedule, weight_decay=float(wd))
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


def _evaluation_callback(dataset, scheme, *, norm="inter_ocular", cutoff=0.10, every: int = 1):
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
    """The resume callbacks of a run: one :class:`~lmkzoo.tasks.backup.TrainingBackup` (model, optimizer and
    seed-generator states, written atomically each epoch; the newest intact state restored at the start)."""
    from lmkzoo.tasks.backup import TrainingBackup

    return [TrainingBackup(backup_dir)]


def _eval_protocol(data, norm=None, cutoff=None):
    """The validation metric's normalisation and FR/AUC cutoff: the dataset's standard protocol
    (:data:`lmkzoo.tasks.evaluate.PROTOCOLS`, e.g. JD-landmark's box NME @0.08) unless given; inter-ocular @0.10
    for datasets given as ``tf.data`` objects."""
    from lmkzoo.tasks.evaluate import PROTOCOLS

    default = PROTOCOLS.get(data.split("/")[0].split(":")[0], ("inter_ocular", 0.10)) if isinstance(data, str) else (
        "inter_ocular", 0.10)
    return (norm or default[0]), float(cutoff if cutoff is not None else default[1])


def _sync_batchnorm(model, on: bool):
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = on


def _source(data, split, data_dir, manual_dir, shuffle_files=False):
    from lmkzoo.data.pipeline import load_tfds

    return load_tfds(data, split, data_dir=data_dir, shuffle_files=shuffle_files, manual_dir=manual_dir)


def _train_val_sources(data, train_split, val_split, data_dir, manual_dir):
    """``(train, val)`` example datasets from a TFDS name (its ``train_split`` / ``val_split``, built from
    ``manual_dir`` first when given), a ``(train, val)`` pair (``val`` may be None) or one dataset."""
    if isinstance(data, str):
        train_src = _source(data, train_split, data_dir, manual_dir)
        return train_src, (_source(data, val_split, data_dir, None) if val_split else None)
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
            from lmkzoo.tasks.backup import has_resume_state

            if not existed and out.is_dir() and not has_resume_state(out):
                shutil.rmtree(out, ignore_errors=True)
            raise

    return run


@leaves_nothing_on_failure
def train(name: str, *, data, data_dir=None, manual_dir=None, train_split: str = "train",
          val_split: str | None = "validation", out_dir="runs/train", epochs: int | None = None,
          batch_size: int | None = None, learning_rate: float | None = None, augment=None,
          builder_overrides: dict | None = None, steps_per_epoch: int | None = None, strategy="one_device",
          precision: str | None = None, verbose="auto", seed: int = 0, eval_every: int = 1, eval_cutoff: float | None = None,
          eval_norm: str | None = None, callbacks=None, unlabeled=None, unlabeled_crop: dict | None = None,
          discriminator_overrides: dict | None = None, imagenet_weights=None, init_weights=None):
    """Train zoo model ``name``.

    Args:
        name: ``arch[.tag]`` (or a :class:`~lmkzoo.registry.ModelSpec`, e.g. a shrunk copy for experiments).
        data: a TFDS name (``"landmark_folder/lfw_teacher68"``) or a ``(train_ds, val_ds)`` pair of example
            datasets (``val_ds`` may be None).
        data_dir, manual_dir: TFDS data dir; a manual-download folder to build the dataset from first.
        out_dir: ``backup/`` (resume state), ``ckpt/epochNNN.weights.h5``, ``log.csv``, ``tb/``, ``config.json``,
            ``final.keras``, ``final.weights.h5``, ``history.json``.
        epochs, batch_size (global), learning_rate, augment: override the zoo recipe.
        builder_overrides: override zoo ``builder`` arguments (``{"backbone_args": {"width_multiplier": 0.5}}``).
        strategy: ``one_device`` | ``mirrored`` | ``multi_worker`` | ``tpu``, or a ``tf.distribute.Strategy``.
            TensorFlow configures a multi-worker cluster only before its first op: with ``data`` given as
            datasets, create the strategy first (``make_strategy("multi_worker")`` at program start) and pass
            it. Workers other than the chief keep their resume state and logs in ``out_dir/worker<i>/``.
        precision: ``None`` (float32) or a Keras dtype policy such as ``"mixed_bfloat16"``.
        seed: fixes initialisation, shuffling and augmentation.
        eval_every, eval_norm, eval_cutoff: the validation NME / FR / AUC callback (``val_nme`` ...): every
            ``eval_every`` epochs, by default with the dataset's standard protocol (``PROTOCOLS`` of
            :mod:`lmkzoo.tasks.evaluate`; inter-ocular @0.10 for ``tf.data`` inputs).
        unlabeled: unlabeled faces for models whose recipe is adversarial (``laplacekl_rcn_d``): a TFDS name or a
            ``tf.data.Dataset``; such models train with :func:`lmkzoo.tasks.laplacekl_trainer.train_adversarial`.
            For PIPNet recipes with an ``stc`` section (``pipnet_r18_stc``) the unlabeled faces switch on
            self-training (with curriculum), :func:`lmkzoo.tasks.stc.train_self_training`; without them (or with
            the paradigm ``"gsl"``) such a model trains supervised. The paradigms ``"uda"`` / ``"gssl"`` take the
            recipe's unlabelled sources with their box conventions (:func:`lmkzoo.tasks.stc.resolve_unlabeled`).
        unlabeled_crop: crop of the unlabeled faces (default the model's own policy, which for LaplaceKL needs five
            points per image); ``{"policy": "box", "scale": s}`` crops ``face_image_folder``'s boxes instead.
        discriminator_overrides: override the recipe's discriminator arguments (adversarial models only).
        imagenet_weights: the ImageNet MobileNetV2 TFLite file (``tf2_mobilenet_v2_1.0_224_ptq.tflite``) for recipes
            with ``backbone_init: imagenet`` (default ``$LMKZOO_IMAGENET_MOBILENETV2``): a new run starts its backbone
            from it (:mod:`lmkzoo.convert.mobilenet_v2_tflite`, BatchNorm statistics from the first training batch).
        init_weights: fine-tune: a new run starts from these weights: a ``.weights.h5`` path, or a zoo name with
            published weights and the same builder (``"pipnet_lite.lfw"``). PIPNet keeps the mean face that the
            weights were trained with (its neighbour offsets are relative to it): that zoo entry's, or ``name``'s.
    Returns:
        ``(network, history)``; ``history`` has the per-epoch logs and ``train_seconds``.
    """
    import keras
    import tensorflow as tf

    from lmkzoo.data.pipeline import compute_meanface, make_dataset
    from lmkzoo.registry import get_spec
    from lmkzoo.tasks.families import get_family
    from lmkzoo.tasks.loader import build_network

    check_run_args(epochs=epochs, batch_size=batch_size, steps_per_epoch=steps_per_epoch, eval_every=eval_every,
                   learning_rate=learning_rate)
    spec = name if hasattr(name, "family") else get_spec(name)
    if spec.recipe.get("adversarial"):
        if unlabeled is None:
            raise InvalidArgumentError(f"{spec.name} trains adversarially and needs unlabeled faces: pass unlabeled= "
                                       "(a TFDS name such as face_image_folder, or a tf.data.Dataset)")
        if not (strategy in (None, "one_device") or isinstance(strategy, tf.distribute.OneDeviceStrategy)) or precision:
            raise InvalidArgumentError(
                f"{spec.name} trains adversarially (two optimizers in one custom train_step), on one device in float32; "
                f"got strategy={strategy!r}, precision={precision!r}")
        from lmkzoo.tasks.laplacekl_trainer import train_adversarial

        return train_adversarial(name, labeled=data, unlabeled=unlabeled, data_dir=data_dir, train_split=train_split,
                                 val_split=val_split, out_dir=out_dir, epochs=epochs, batch_size=batch_size,
                                 learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
                                 builder_overrides=builder_overrides, augment=augment, verbose=verbose, seed=seed,
                                 unlabeled_crop=unlabeled_crop, discriminator_overrides=discriminator_overrides,
                                 manual_dir=manual_dir, callbacks=callbacks)
    if spec.recipe.get("stc") and unlabeled is not None:
        from lmkzoo.tasks.stc import resolve_unlabeled

        unlabeled = resolve_unlabeled(spec, unlabeled)  # a paradigm ("gsl": supervised, "uda", "gssl") → its sources
    if spec.recipe.get("stc") and unlabeled is not None:
        # PIPNet self-training (with curriculum): rounds of pseudo-labelling + retraining, each round through train()
        from lmkzoo.tasks.stc import train_self_training

        return train_self_training(spec, labeled=data, unlabeled=unlabeled, data_dir=data_dir, manual_dir=manual_dir,
                                   train_split=train_split, val_split=val_split, out_dir=out_dir, epochs=epochs,
                                   batch_size=batch_size, learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
                                   builder_overrides=builder_overrides, augment=augment, strategy=strategy,
                                   precision=precision, verbose=verbose, seed=seed, eval_every=eval_every,
                                   callbacks=callbacks)
    family = get_family(spec.family)
    recipe = dict(spec.recipe)
    epochs = int(epochs or recipe.get("epochs", 1))
    batch_size = int(batch_size or recipe.get("batch_size", 16))
    augment = augment if augment is not None else recipe.get("augment", family.augment_preset)
    out = Path(out_dir)
    strat = strategy if isinstance(strategy, tf.distribute.Strategy) else make_strategy(strategy)
    replicas = strat.num_replicas_in_sync
    if batch_size % replicas:
        raise InvalidArgumentError(f"global batch size {batch_size} must be a multiple of the {replicas} replicas")

    train_src, val_src = _train_val_sources(data, train_split, val_split, data_dir, manual_dir)
    n_train = int(train_src.cardinality().numpy())
    # an epoch given by steps_per_epoch is exactly that many batches of the deterministic stream (fewer or more than
    # one pass over the data), so a resumed run still sees the batches an uninterrupted one would
    epoch_steps = steps_per_epoch
    if steps_per_epoch is None:
        if n_train <= 0:
            raise InvalidArgumentError("cannot infer steps_per_epoch from a dataset of unknown size; pass steps_per_epoch")
        steps_per_epoch = max(1, n_train // batch_size)
    if precision:
        keras.mixed_precision.set_global_policy(precision)
    out.mkdir(parents=True, exist_ok=True)

    overrides = dict(builder_overrides or {})
    init_file = None
    if init_weights is not None:
        init_file, init_builder = _init_source(spec, init_weights)
        if spec.family == "pipnet" and "meanface" in init_builder:
            overrides.setdefault("meanface", init_builder["meanface"])
    if spec.family == "pipnet" and "meanface" not in overrides:
        mf = compute_meanface(train_src, crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme)
        overrides["meanface"] = mf.round(6).tolist()
    # workers other than the chief keep their resume state and logs apart (each restores its own backup);
    # the chief writes the run's files and the final model
    is_chief = _is_chief(strat)
    work = out if is_chief else out / f"worker{strat.cluster_resolver.task_id}"
    from lmkzoo.tasks.backup import TrainingBackup

    backup = TrainingBackup(work / "backup")
    start_epoch = backup.initial_epoch
    common = dict(crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean, std=spec.std)

    keras.utils.set_random_seed(seed)
    with strat.scope():
        network = build_network(spec, **overrides)
        if replicas > 1:
            _sync_batchnorm(network, True)
        optimizer = build_optimizer(recipe, steps_per_epoch, learning_rate=learning_rate, epochs=epochs)
        network.compile(optimizer=optimizer, loss=family.default_loss(spec, network))

    def dataset_fn(ctx=None):
        per_replica = batch_size if ctx is None else ctx.get_per_replica_batch_size(batch_size)
        shards = 1 if ctx is None else ctx.num_input_pipelines
        index = 0 if ctx is None else ctx.input_pipeline_id
        return make_dataset(train_src, codec=network.codec, training=True, batch_size=per_replica, augment=augment,
                            seed=seed, start_epoch=start_epoch, epochs=max(1, epochs - start_epoch), num_shards=shards, shard_index=index,
                            epoch_multiple=batch_size // shards, steps_per_epoch=epoch_steps, **common)

    backbone_init = None
    if init_weights is not None:
        backbone_init = {"weights": str(init_weights)}
        if start_epoch == 0:
            network.load_weights(init_file)
    elif recipe.get("backbone_init"):
        backbone_init = _init_backbone(network, spec, recipe["backbone_init"], imagenet_weights,
                                       dataset_fn() if start_epoch == 0 else None)
    train_ds = dataset_fn() if replicas == 1 else strat.distribute_datasets_from_function(dataset_fn)
    if replicas > 1 and n_train > 0 and epoch_steps is None:
        # each input pipeline reads 1/num_workers of the data
        workers = getattr(strat.extended, "_num_workers", 1) or 1
        steps_per_epoch = max(1, (n_train // workers) // (batch_size // workers))

    (work / "ckpt").mkdir(parents=True, exist_ok=True)
    cbs = [
        backup,
        keras.callbacks.CSVLogger(str(work / "log.csv"), append=True),
        keras.callbacks.TensorBoard(str(work / "tb"), write_graph=False, profile_batch=0),
        keras.callbacks.ModelCheckpoint(str(work / "ckpt" / "epoch{epoch:03d}.weights.h5"), save_weights_only=True),
    ]
    if val_src is not None:
        val_ds = make_dataset(val_src, training=False, batch_size=batch_size, **common)
        norm, cutoff = _eval_protocol(data, eval_norm, eval_cutoff)
        cbs.insert(0, _evaluation_callback(val_ds, spec.scheme, norm=norm, cutoff=cutoff, every=eval_every))
    cbs += list(callbacks or [])
    (work / "config.json").write_text(json.dumps({
        "model": spec.name, "data": data if isinstance(data, str) else "<datasets>", "epochs": epochs,
        "batch_size": batch_size, "learning_rate": learning_rate, "augment": augment, "builder_overrides": overrides,
        "steps_per_epoch": steps_per_epoch, "seed": seed, "strategy": strategy if isinstance(strategy, str) else type(strategy).__name__,
        "replicas": replicas, "precision": precision, "start_epoch": start_epoch, "backbone_init": backbone_init,
    }, indent=2, default=str))
    t0 = time.time()
    history = network.fit(train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=cbs, verbose=verbose)
    elapsed = time.time() - t0
    if replicas > 1:
        _sync_batchnorm(network, False)
    network.zoo_spec = spec.to_dict()
    network.zoo_spec["builder"] = {**network.zoo_spec["builder"], **overrides}
    if is_chief:
        _atomic_save(network, out / "final.keras")
        _atomic_save(network, out / "final.weights.h5", weights_only=True)
    # every finished epoch, those before a restart included (Keras' history holds only this call's)
    hist = {k: [float(v) for v in vs] for k, vs in (backup.history or history.history).items()}
    hist["train_seconds"] = elapsed
    if is_chief:
        (out / "history.json").write_text(json.dumps(hist, indent=2))
    if precision:
        keras.mixed_precision.set_global_policy("float32")
    return network, hist


def _init_source(spec, init_weights) -> tuple[str, dict]:
    """``init_weights`` → ``(local weights file, builder arguments they were trained with)``: a zoo name's verified
    published weights and builder, or a file path with ``spec``'s builder."""
    from lmkzoo.registry import get_spec, list_models

    if str(init_weights).split(".")[0] in {n.split(".")[0] for n in list_models()} and not Path(init_weights).exists():
        from lmkzoo.tasks.loader import _pretrained_file

        src = get_spec(str(init_weights))
        return str(_pretrained_file(src)), dict(src.builder)
    if not Path(init_weights).is_file():
        raise InvalidArgumentError(f"init_weights must be a zoo name with weights or a .weights.h5 file; got {init_weights!r}")
    return str(init_weights), dict(spec.builder)


def _init_backbone(network, spec, kind, path, dataset):
    """A recipe's ``backbone_init``: ``imagenet`` loads the ImageNet MobileNetV2 (a new run: ``dataset`` given, its
    first batch calibrates the BatchNorms; a resumed run gets its weights from the backup and only checks the file)."""
    if kind != "imagenet":
        raise InvalidArgumentError(f"{spec.name}: unknown backbone_init {kind!r}; allowed: imagenet")
    path = path or os.environ.get("LMKZOO_IMAGENET_MOBILENETV2")
    if not path:
        raise InvalidArgumentError(
            f"{spec.name} starts from ImageNet MobileNetV2 weights: pass imagenet_weights= (CLI --imagenet-weights) "
            "or set LMKZOO_IMAGENET_MOBILENETV2 to tf2_mobilenet_v2_1.0_224_ptq.tflite (google-coral/test_data)")
    if not Path(path).is_file():
        raise InvalidArgumentError(f"imagenet_weights: no file at {path}")
    from lmkzoo.convert.mobilenet_v2_tflite import load_imagenet_mobilenet_v2, read_mobilenet_v2_tflite

    if dataset is None:
        return {"imagenet": str(path), "sha256": read_mobilenet_v2_tflite(path)["sha256"], "resumed": True}
    images = next(iter(dataset))[0]
    info = load_imagenet_mobilenet_v2(network.backbone, path, mean=spec.mean, std=spec.std,
                                      calibration_images=np.asarray(images))
    return {"imagenet": str(path), **info}


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def _atomic_save(network, path: Path, weights_only: bool = False):
    """Write to a temporary file in the same folder, then rename: never a half-written model file."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    if weights_only:
        network.save_weights(str(tmp))
    else:
        network.save(str(tmp))
    os.replace(tmp, path)
