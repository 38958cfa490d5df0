"""Supervised training: a zoo recipe → data pipeline + codec + optimizer + schedule → Keras ``fit``, in the run
folder of :mod:`lmkzoo.training.run`.

:func:`train_supervised` builds, inside the chosen ``tf.distribute`` strategy's scope, the network (with what its
family fixes from the data: PIPNet's mean face comes from the training split), the family's tf.data preset and
codec, the recipe's optimizer and learning-rate schedule, and runs ``fit`` with:

* the resume state (model + optimizer + seed-generator states every epoch): a killed run started again with the
  same ``out_dir`` continues at its last finished epoch. The input stream is a deterministic function of
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

import os
import time
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.training.optimizers import build_optimizer
from lmkzoo.training.run import (
    atomic_save,
    eval_protocol,
    history_of,
    is_chief,
    leaves_nothing_on_failure,
    make_strategy,
    run_callbacks,
    spec_of,
    train_val_sources,
    write_config,
    write_history,
)

__all__ = ["train_supervised"]


@leaves_nothing_on_failure
def train_supervised(name, *, data, data_dir=None, manual_dir=None, train_split: str = "train",
                     val_split: str | None = "validation", out_dir="runs/train", epochs: int | None = None,
                     batch_size: int | None = None, learning_rate: float | None = None, augment=None,
                     builder_overrides: dict | None = None, steps_per_epoch: int | None = None, strategy="one_device",
                     precision: str | None = None, verbose="auto", seed: int = 0, eval_every: int = 1,
                     eval_cutoff: float | None = None, eval_norm: str | None = None, callbacks=None,
                     imagenet_weights=None, init_weights=None, backbone_init: str | None = None):
    """The supervised trainer that :func:`lmkzoo.training.train.train` dispatches to: one ``fit`` of the zoo recipe
    in a run folder (:mod:`lmkzoo.training.run`). Arguments and return value as documented there.
    """
    import keras
    import tensorflow as tf

    from lmkzoo.data.pipeline import make_dataset
    from lmkzoo.families.base import build_network, get_family, spec_dict
    from lmkzoo.training.backup import TrainingBackup

    spec = spec_of(name)
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

    train_src, val_src = train_val_sources(data, train_split, val_split, data_dir, manual_dir)
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

    init_file, init_builder = _init_source(spec, init_weights) if init_weights is not None else (None, None)
    # what the family fixes from the data or the starting weights (PIPNet: the mean face)
    overrides = family.fit_overrides(spec, builder_overrides or {}, train_source=train_src, init_builder=init_builder)
    # workers other than the chief keep their resume state and logs apart (each restores its own backup);
    # the chief writes the run's files and the final model
    chief = is_chief(strat)
    work = out if chief else out / f"worker{strat.cluster_resolver.task_id}"
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

    init_kind = recipe.get("backbone_init") if backbone_init is None else backbone_init
    backbone_init = None
    if init_weights is not None:
        backbone_init = {"weights": str(init_weights)}
        if start_epoch == 0:
            network.load_weights(init_file)
    elif init_kind not in (None, "none"):
        backbone_init = _init_backbone(network, spec, init_kind, imagenet_weights,
                                       dataset_fn() if start_epoch == 0 else None)
    train_ds = dataset_fn() if replicas == 1 else strat.distribute_datasets_from_function(dataset_fn)
    if replicas > 1 and n_train > 0 and epoch_steps is None:
        # each input pipeline reads 1/num_workers of the data
        workers = getattr(strat.extended, "_num_workers", 1) or 1
        steps_per_epoch = max(1, (n_train // workers) // (batch_size // workers))

    val_ds = make_dataset(val_src, training=False, batch_size=batch_size, **common) if val_src is not None else None
    norm, cutoff = eval_protocol(data, eval_norm, eval_cutoff)
    cbs = run_callbacks(work, backup, val_ds=val_ds, scheme=spec.scheme, norm=norm, cutoff=cutoff, every=eval_every,
                        callbacks=callbacks)
    write_config(work, {
        "model": spec.name, "data": data if isinstance(data, str) else "<datasets>", "epochs": epochs,
        "batch_size": batch_size, "learning_rate": learning_rate, "augment": augment, "builder_overrides": overrides,
        "steps_per_epoch": steps_per_epoch, "seed": seed, "strategy": strategy if isinstance(strategy, str) else type(strategy).__name__,
        "replicas": replicas, "precision": precision, "start_epoch": start_epoch, "backbone_init": backbone_init,
    })
    t0 = time.time()
    history = network.fit(train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=cbs, verbose=verbose)
    elapsed = time.time() - t0
    if replicas > 1:
        _sync_batchnorm(network, False)
    network.zoo_spec = spec_dict(spec, overrides)
    if chief:
        atomic_save(network, out / "final.keras")
        atomic_save(network, out / "final.weights.h5", weights_only=True)
    hist = history_of(backup, history, train_seconds=elapsed)
    if chief:
        write_history(out, hist)
    if precision:
        keras.mixed_precision.set_global_policy("float32")
    return network, hist


def _sync_batchnorm(model, on: bool):
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = on


def _init_source(spec, init_weights) -> tuple[str, dict]:
    """``init_weights`` → ``(local weights file, builder arguments they were trained with)``: a zoo name's verified
    published weights and builder, or a file path with ``spec``'s builder."""
    from lmkzoo.registry import get_spec, list_models

    if str(init_weights).split(".")[0] in {n.split(".")[0] for n in list_models()} and not Path(init_weights).exists():
        from lmkzoo.inference.loader import _pretrained_file

        src = get_spec(str(init_weights))
        return str(_pretrained_file(src)), dict(src.builder)
    if not Path(init_weights).is_file():
        raise InvalidArgumentError(f"init_weights must be a zoo name with weights or a .weights.h5 file; got {init_weights!r}")
    return str(init_weights), dict(spec.builder)


def _init_backbone(network, spec, kind, path, dataset):
    """A recipe's ``backbone_init``: ``imagenet`` loads the ImageNet MobileNetV2 (a new run: ``dataset`` given, its
    first batch calibrates the BatchNorms; a resumed run gets its weights from the backup and only checks the file)."""
    if kind != "imagenet":
        raise InvalidArgumentError(f"{spec.name}: unknown backbone_init {kind!r}; allowed: imagenet, none")
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
