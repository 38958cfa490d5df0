"""The training entry point (:func:`lmkzoo.train`): a short dispatcher from a zoo recipe to its trainer.

The family says which trainer runs a recipe (:meth:`lmkzoo.families.base.Family.trainer_for`): supervised ``fit``
(:mod:`~lmkzoo.training.supervised`), PIPNet's self-training with curriculum (:mod:`~lmkzoo.training.self_training`)
or LaplaceKL+D's adversarial training (:mod:`~lmkzoo.training.adversarial`). All of them write the one run folder
of :mod:`~lmkzoo.training.run`.
"""

from __future__ import annotations

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.training.run import check_run_args, leaves_nothing_on_failure, spec_of
from lmkzoo.training.supervised import train_supervised

__all__ = ["train"]


@leaves_nothing_on_failure
def train(name: str, *, data, data_dir=None, manual_dir=None, train_split: str = "train",
          val_split: str | None = "validation", out_dir="runs/train", epochs: int | None = None,
          batch_size: int | None = None, learning_rate: float | None = None, augment=None,
          builder_overrides: dict | None = None, steps_per_epoch: int | None = None, strategy="one_device",
          precision: str | None = None, verbose="auto", seed: int = 0, eval_every: int = 1, eval_cutoff: float | None = None,
          eval_norm: str | None = None, callbacks=None, unlabeled=None, unlabeled_crop: dict | None = None,
          discriminator_overrides: dict | None = None, imagenet_weights=None, init_weights=None,
          backbone_init: str | None = None):
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
            :mod:`lmkzoo.inference.evaluate`; inter-ocular @0.10 for ``tf.data`` inputs).
        unlabeled: unlabeled faces for models whose recipe is adversarial (``laplacekl_rcn_d``): a TFDS name or a
            ``tf.data.Dataset``; such models train with :func:`lmkzoo.training.adversarial.train_adversarial`.
            For PIPNet recipes with an ``stc`` section (``pipnet_r18_stc``) the unlabeled faces switch on
            self-training (with curriculum), :func:`lmkzoo.training.self_training.train_self_training`; without them (or with
            the paradigm ``"gsl"``) such a model trains supervised. The paradigms ``"uda"`` / ``"gssl"`` take the
            recipe's unlabelled sources with their box conventions (:func:`lmkzoo.training.self_training.resolve_unlabeled`).
        unlabeled_crop: crop of the unlabeled faces (default the model's own policy, which for LaplaceKL needs five
            points per image); ``{"policy": "box", "scale": s}`` crops ``face_image_folder``'s boxes instead.
        discriminator_overrides: override the recipe's discriminator arguments (adversarial models only).
        imagenet_weights: the ImageNet MobileNetV2 TFLite file (``tf2_mobilenet_v2_1.0_224_ptq.tflite``) for recipes
            with ``backbone_init: imagenet`` (default ``$LMKZOO_IMAGENET_MOBILENETV2``): a new run starts its backbone
            from it (:mod:`lmkzoo.convert.mobilenet_v2_tflite`, BatchNorm statistics from the first training batch).
        backbone_init: override the recipe's ``backbone_init``: ``"imagenet"``, or ``"none"`` to start from random
            weights (e.g. a narrower backbone than the ImageNet file's for a quick experiment); default the recipe's.
        init_weights: fine-tune: a new run starts from these weights: a ``.weights.h5`` path, or a zoo name with
            published weights and the same builder (``"pipnet_lite.lfw"``). PIPNet keeps the mean face that the
            weights were trained with (its neighbour offsets are relative to it): that zoo entry's, or ``name``'s.
    Returns:
        ``(network, history)``; ``history`` has the per-epoch logs and ``train_seconds``.
    """
    import tensorflow as tf

    from lmkzoo.families.base import get_family

    check_run_args(epochs=epochs, batch_size=batch_size, steps_per_epoch=steps_per_epoch, eval_every=eval_every,
                   learning_rate=learning_rate)
    spec = spec_of(name)
    family = get_family(spec.family)
    trainer = family.trainer_for(spec, unlabeled)
    if trainer == "adversarial":
        if unlabeled is None:
            raise InvalidArgumentError(f"{spec.name} trains adversarially and needs unlabeled faces: pass unlabeled= "
                                       "(a TFDS name such as face_image_folder, or a tf.data.Dataset)")
        if not (strategy in (None, "one_device") or isinstance(strategy, tf.distribute.OneDeviceStrategy)) or precision:
            raise InvalidArgumentError(
                f"{spec.name} trains adversarially (two optimizers in one custom train_step), on one device in float32; "
                f"got strategy={strategy!r}, precision={precision!r}")
        from lmkzoo.training.adversarial import train_adversarial

        return train_adversarial(name, labeled=data, unlabeled=unlabeled, data_dir=data_dir, train_split=train_split,
                                 val_split=val_split, out_dir=out_dir, epochs=epochs, batch_size=batch_size,
                                 learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
                                 builder_overrides=builder_overrides, augment=augment, verbose=verbose, seed=seed,
                                 unlabeled_crop=unlabeled_crop, discriminator_overrides=discriminator_overrides,
                                 manual_dir=manual_dir, callbacks=callbacks)
    if trainer == "self_training":
        from lmkzoo.training.self_training import resolve_unlabeled

        unlabeled = resolve_unlabeled(spec, unlabeled)  # a paradigm ("gsl": supervised, "uda", "gssl") → its sources
        trainer = family.trainer_for(spec, unlabeled)
    if trainer == "self_training":
        # PIPNet self-training (with curriculum): rounds of pseudo-labelling + retraining, each a supervised run
        from lmkzoo.training.self_training import train_self_training

        return train_self_training(spec, labeled=data, unlabeled=unlabeled, data_dir=data_dir, manual_dir=manual_dir,
                                   train_split=train_split, val_split=val_split, out_dir=out_dir, epochs=epochs,
                                   batch_size=batch_size, learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
                                   builder_overrides=builder_overrides, augment=augment, strategy=strategy,
                                   precision=precision, verbose=verbose, seed=seed, eval_every=eval_every,
                                   callbacks=callbacks)
    return train_supervised(spec, data=data, data_dir=data_dir, manual_dir=manual_dir, train_split=train_split,
                            val_split=val_split, out_dir=out_dir, epochs=epochs, batch_size=batch_size,
                            learning_rate=learning_rate, augment=augment, builder_overrides=builder_overrides,
                            steps_per_epoch=steps_per_epoch, strategy=strategy, precision=precision, verbose=verbose,
                            seed=seed, eval_every=eval_every, eval_cutoff=eval_cutoff, eval_norm=eval_norm,
                            callbacks=callbacks, imagenet_weights=imagenet_weights, init_weights=init_weights,
                            backbone_init=backbone_init)
