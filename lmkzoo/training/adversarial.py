"""LaplaceKL+D: adversarial semi-supervised training (Robinson et al. 2019, §3.2-3.3, Algorithm 1).

Each step draws a labeled batch ``(d^l, s^l)`` and an unlabeled batch ``d^u`` and computes

* the supervised loss ``L_G`` of the generator on ``d^l`` (LaplaceKL, Eq. 3, or the soft-argmax L2, Eq. 1);
* ``H_fake = softmax(β G(d^u))`` and ``H_real = ω(s^l)`` (the codec's target maps), and the discriminator
  logits on ``[d^l, H_real]`` and ``[d^u, H_fake]``;
* ``L_adv = log D([d^l, H_real]) + log(1 − D([d^u, H_fake]))`` (Eq. 5), averaged over the PatchGAN's patches.

then updates both networks from the same forward pass with their own optimizers: D *ascends* ``L_adv``
(it minimises the binary cross-entropy ``−L_adv``), and G descends ``L_G + λ·L_adv`` (Eq. 7, min over G of
``λ L_adv + L_KL``), with ``λ = 0.001``. (Algorithm 1 prints both updates as "θ ← −∇(…)" with the signs
of a maximisation for G; Eq. 4-7 fix the direction and are followed.) ``generator_objective="minimax"``
uses Eq. 5's ``log(1 − D(fake))`` for G, as printed; ``"non_saturating"`` uses ``−log D(fake)`` instead
(the usual GAN practice, same fixed point).

The paper trains with PyTorch's Adam (lr 1e-3, weight decay 1e-5). PyTorch's Adam weight decay is an L2
term added to the gradient before the Adam moments (not AdamW's decoupled decay): :func:`train_adversarial`
builds both optimizers with :func:`lmkzoo.training.optimizers.build_optimizer`, which maps the recipe's
``{name: adam, weight_decay: 1e-5}`` to :class:`lmkzoo.training.optimizers.AdamL2` (the same optimizer the
supervised ``train`` uses). The trainer's own ``weight_decay`` (default 0) adds the same L2 term in
``train_step`` for optimizers that have no decay of their own.

The labeled batches are ``(images, targets)`` from :func:`lmkzoo.data.pipeline.make_dataset` with the
family codec; the unlabeled batches come from any ``tf.data.Dataset`` of image batches (normalised float,
or uint8 crops that the trainer normalises with the model's mean / std), e.g.
:func:`lmkzoo.data.unlabeled.make_unlabeled_dataset` over the ``face_image_folder`` builder.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.codecs.soft_argmax import probabilities_to_heatmaps, spatial_softmax
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.training.run import leaves_nothing_on_failure

__all__ = ["AdversarialLandmarkTrainer", "make_adversarial_dataset", "train_adversarial", "GENERATOR_OBJECTIVES"]

GENERATOR_OBJECTIVES = ("minimax", "non_saturating")


@lmkzoo_export
class AdversarialLandmarkTrainer(keras.Model):
    """A generator (a :class:`~lmkzoo.models.laplacekl.RCN`) and a discriminator trained by Algorithm 1.

    ``fit`` takes batches ``({"labeled": images_l, "unlabeled": images_u}, targets_l)`` (see
    :func:`make_adversarial_dataset`). Calling the trainer runs the generator; ``codec`` is the generator's,
    so :func:`lmkzoo.training.run.evaluate_network` evaluates it directly.

    Args:
        generator: the landmark network (``{"heatmaps"}`` output, a :class:`~lmkzoo.codecs.LaplaceCodec`).
        discriminator: maps ``(B, H, W, 3 + K)`` to patch logits.
        adversarial_weight: λ (0.001).
        generator_objective: ``"minimax"`` (Eq. 5 as printed) or ``"non_saturating"``.
        weight_decay: PyTorch-style L2 added to the gradients of both networks in ``train_step`` (default 0:
            prefer optimizers with coupled decay, :class:`~lmkzoo.training.optimizers.AdamL2`, as
            :func:`train_adversarial` does; giving both would decay twice and is refused by ``compile``).
        mean, std: input normalisation, used only for uint8 unlabeled batches.
    """

    def __init__(self, generator, discriminator, *, adversarial_weight: float = 1e-3,
                 generator_objective: str = "minimax", weight_decay: float = 0.0, mean=None, std=None, **kwargs):
        kwargs.setdefault("name", "adversarial_trainer")
        super().__init__(**kwargs)
        if generator_objective not in GENERATOR_OBJECTIVES:
            raise InvalidArgumentError(f"generator_objective must be one of {GENERATOR_OBJECTIVES}; got {generator_objective!r}")
        if not float(adversarial_weight) >= 0:
            raise InvalidArgumentError(f"adversarial_weight (lambda) must be >= 0; got {adversarial_weight!r}")
        if not float(weight_decay) >= 0:
            raise InvalidArgumentError(f"weight_decay must be >= 0; got {weight_decay!r}")
        codec = getattr(generator, "codec", None)
        if codec is None or not hasattr(codec, "render"):
            raise InvalidArgumentError("the generator must carry a heatmap codec with render() (a LaplaceCodec)")
        w, h = codec.heatmap_size
        d_in = tuple(discriminator.inputs[0].shape[1:])
        if d_in != (h, w, 3 + codec.num_points):
            raise InvalidArgumentError(f"the discriminator takes {d_in}; the generator needs ({h}, {w}, {3 + codec.num_points})")
        self.generator = generator
        self.discriminator = discriminator
        self.adversarial_weight = float(adversarial_weight)
        self.generator_objective = generator_objective
        self.weight_decay = float(weight_decay)
        self.mean = None if mean is None else tuple(float(v) for v in mean)
        self.std = None if std is None else tuple(float(v) for v in std)
        if (self.mean is None) != (self.std is None):
            raise InvalidArgumentError(f"give both mean and std or neither; got mean={mean!r}, std={std!r}")
        if self.mean is not None:
            from lmkzoo.models.layers import ImageNormalization

            self._normalize = ImageNormalization(self.mean, self.std, name="unlabeled_normalize")
        else:
            self._normalize = None
        self.total_tracker = keras.metrics.Mean(name="loss")
        self.supervised_tracker = keras.metrics.Mean(name="g_loss")
        self.adversarial_tracker = keras.metrics.Mean(name="adv_loss")
        self.d_tracker = keras.metrics.Mean(name="d_loss")
        # both networks are built functional models, so the trainer is too (BackupAndRestore saves its weights)
        self.built = True

    @property
    def codec(self):
        return self.generator.codec

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    own_optimizers = True  # steps g_optimizer / d_optimizer itself (lmkzoo.training.backup leaves compile's unused)

    def compile(self, g_optimizer, d_optimizer, g_loss, **kwargs):
        """``g_optimizer`` / ``d_optimizer``: the two optimizers; ``g_loss``: the supervised loss (LaplaceKL …)."""
        if self.weight_decay:
            for which, opt in (("g_optimizer", g_optimizer), ("d_optimizer", d_optimizer)):
                if getattr(opt, "weight_decay", None):
                    raise InvalidArgumentError(
                        f"{which} has its own weight_decay={opt.weight_decay!r} and the trainer adds "
                        f"weight_decay={self.weight_decay!r} to the gradients: the decay would apply twice; "
                        "set one of them to 0"
                    )
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.g_loss = g_loss
        # create the optimizer slots now: created inside the first traced step they would force a second trace
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)
        #: the distribution ω(s) draws for the real samples (the supervised loss's target)
        self.target_distribution = getattr(g_loss, "target_distribution", "laplace")

    @property
    def metrics(self):
        return [self.total_tracker, self.supervised_tracker, self.adversarial_tracker, self.d_tracker]

    def _unlabeled_images(self, x_u):
        if x_u.dtype == "uint8":
            if self._normalize is None:
                raise InvalidArgumentError("uint8 unlabeled batches need the trainer's mean and std (normalisation)")
            return self._normalize(x_u)
        return ops.cast(x_u, "float32")

    def _apply(self, optimizer, grads, variables):
        pairs = []
        for g, v in zip(grads, variables):
            if g is None:
                continue
            if self.weight_decay:
                g = g + self.weight_decay * ops.cast(v, g.dtype)
            pairs.append((g, v))
        optimizer.apply_gradients(pairs)

    def train_step(self, data):
        import tensorflow as tf  # gradient tapes: the TensorFlow backend

        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x_l = ops.cast(x["labeled"], "float32")
        x_u = self._unlabeled_images(x["unlabeled"])
        codec = self.generator.codec
        w, h = codec.heatmap_size
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            out_l = self.generator(x_l, training=True)
            supervised = self.g_loss(y, out_l)
            out_u = self.generator(x_u, training=True)
            fake = probabilities_to_heatmaps(spatial_softmax(out_u["heatmaps"], codec.beta), h, w)
            real = ops.stop_gradient(codec.render(ops.cast(y["landmarks"], "float32"), distribution=self.target_distribution))
            d_real = self.discriminator(ops.concatenate([x_l, real], axis=-1), training=True)
            d_fake = self.discriminator(ops.concatenate([x_u, fake], axis=-1), training=True)
            # with D = sigmoid(z): log D = -softplus(-z), log(1 - D) = -softplus(z)
            log_1m_d_fake = -ops.mean(ops.softplus(d_fake))
            l_adv = -ops.mean(ops.softplus(-d_real)) + log_1m_d_fake
            d_loss = -l_adv
            adv_g = log_1m_d_fake if self.generator_objective == "minimax" else ops.mean(ops.softplus(-d_fake))
            g_total = supervised + self.adversarial_weight * adv_g
            if self.generator.losses:
                g_total = g_total + ops.sum(self.generator.losses)
            d_total = d_loss + ops.sum(self.discriminator.losses) if self.discriminator.losses else d_loss
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        self._apply(self.d_optimizer, d_tape.gradient(d_total, d_vars), d_vars)
        self._apply(self.g_optimizer, g_tape.gradient(g_total, g_vars), g_vars)
        self.total_tracker.update_state(g_total)
        self.supervised_tracker.update_state(supervised)
        self.adversarial_tracker.update_state(adv_g)
        self.d_tracker.update_state(d_loss)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "adversarial_weight": self.adversarial_weight,
            "generator_objective": self.generator_objective,
            "weight_decay": self.weight_decay,
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def make_adversarial_dataset(labeled, unlabeled, *, skip_unlabeled: int = 0):
    """Zip labeled ``(images, targets)`` batches with unlabeled image batches, both repeated forever.

    ``unlabeled`` may yield image tensors ``(B, H, W, 3)``, tuples (the first item is taken) or dicts (key
    ``images`` or ``image``). Yields ``({"labeled": images, "unlabeled": images_u}, targets)``. ``skip_unlabeled``
    batches of the repeated unlabeled stream are skipped first (a resumed run continues where it stopped).
    """
    import tensorflow as tf

    for name, ds in (("labeled", labeled), ("unlabeled", unlabeled)):
        if not isinstance(ds, tf.data.Dataset):
            raise InvalidArgumentError(f"{name} must be a tf.data.Dataset; got {type(ds).__name__}")
    spec = unlabeled.element_spec
    if isinstance(spec, dict):
        key = "images" if "images" in spec else "image" if "image" in spec else None
        if key is None:
            raise InvalidArgumentError(f"unlabeled dict batches need an 'images' (or 'image') key; got {sorted(spec)}")
        u = unlabeled.map(lambda d: d[key])
    elif isinstance(spec, tuple):
        u = unlabeled.map(lambda *items: items[0])
    else:
        u = unlabeled
    if len(u.element_spec.shape) != 4:
        raise InvalidArgumentError(f"unlabeled batches must be (B, H, W, 3) images; got shape {u.element_spec.shape}")
    if not (isinstance(labeled.element_spec, tuple) and len(labeled.element_spec) == 2):
        raise InvalidArgumentError("labeled batches must be (images, targets) pairs (make_dataset(..., training=True))")
    ds = tf.data.Dataset.zip((labeled.repeat(), u.repeat().skip(int(skip_unlabeled))))
    return ds.map(lambda lab, img_u: ({"labeled": lab[0], "unlabeled": img_u}, lab[1]))


@leaves_nothing_on_failure
def train_adversarial(name, *, labeled, unlabeled, data_dir=None, train_split: str = "train",
                      val_split: str | None = "validation", unlabeled_split: str = "train", out_dir="runs/train_adv",
                      epochs: int | None = None, batch_size: int | None = None, unlabeled_batch_size: int | None = None,
                      learning_rate: float | None = None, steps_per_epoch: int | None = None,
                      builder_overrides: dict | None = None, unlabeled_crop: dict | None = None, augment=None,
                      discriminator_overrides: dict | None = None, verbose: int | str = "auto", seed: int = 0,
                      manual_dir=None, callbacks=None):
    """Train an adversarial zoo model (``recipe.adversarial``, e.g. ``laplacekl_rcn_d``) by Algorithm 1.

    Args:
        name: ``arch[.tag]`` whose recipe has an ``adversarial`` section.
        labeled: a TFDS name (``train_split`` / ``val_split``), a ``(train, val)`` pair of example datasets, or
            one example dataset.
        unlabeled: a TFDS name (``unlabeled_split``, e.g. the ``face_image_folder`` builder), a dataset of
            examples / single images (cropped by :func:`~lmkzoo.data.unlabeled.make_unlabeled_dataset` with
            ``unlabeled_crop``, default the model's crop policy), or a dataset of image batches ``(B, H, W, 3)``
            used as they are.
        augment: override the recipe's augmentation preset (labeled branch).
        discriminator_overrides: override the recipe's discriminator arguments (e.g. ``{"filters": 16}``).
        out_dir: ``log.csv``, ``config.json``, ``history.json``, ``final.keras`` and ``final.weights.h5`` (the
            generator), ``discriminator.weights.h5``, per-epoch checkpoints of both networks (``ckpt/``), TensorBoard
            logs (``tb/``) and the resume state (``backup/``): started again with the same ``out_dir``, a killed run
            resumes after its last finished epoch with both optimizers' states and the very batches (labelled and
            unlabelled) an uninterrupted run would see.
        manual_dir: TFDS manual-download folder of the labelled dataset (TFDS names only).
        callbacks: more Keras callbacks.
    Returns:
        ``(generator, history_dict)``; the history holds the per-epoch ``loss`` (G's total objective),
        ``g_loss`` (supervised), ``adv_loss`` (G's adversarial term), ``d_loss`` (``−L_adv``) and the update
        counts of both optimizers (``generator_updates``, ``discriminator_updates``).
    """
    import tensorflow as tf

    from lmkzoo.data.pipeline import load_tfds, make_dataset
    from lmkzoo.data.unlabeled import make_unlabeled_dataset
    from lmkzoo.families.base import build_network, get_family, spec_dict
    from lmkzoo.training.backup import TrainingBackup
    from lmkzoo.training.optimizers import build_optimizer
    from lmkzoo.training.run import (
        atomic_save,
        check_run_args,
        eval_protocol,
        history_of,
        run_callbacks,
        spec_of,
        train_val_sources,
        write_config,
        write_history,
    )

    check_run_args(epochs=epochs, batch_size=batch_size, unlabeled_batch_size=unlabeled_batch_size,
                   steps_per_epoch=steps_per_epoch, learning_rate=learning_rate)

    keras.utils.set_random_seed(seed)
    spec = spec_of(name)
    family = get_family(spec.family)
    adv = family.adversarial_args(spec)
    if adv is None:
        raise InvalidArgumentError(f"{spec.name} has no recipe.adversarial section; train it with lmkzoo.train")
    recipe = dict(spec.recipe)
    epochs = int(epochs or recipe.get("epochs", 1))
    batch_size = int(batch_size or recipe.get("batch_size", 16))
    unlabeled_batch_size = int(unlabeled_batch_size or batch_size)
    out = Path(out_dir)

    train_src, val_src = train_val_sources(labeled, train_split, val_split, data_dir, manual_dir)
    if isinstance(unlabeled, str):
        unlabeled = load_tfds(unlabeled, unlabeled_split, data_dir=data_dir, shuffle_files=True)
    if not isinstance(unlabeled, tf.data.Dataset):
        raise InvalidArgumentError(f"unlabeled must be a TFDS name or a tf.data.Dataset; got {type(unlabeled).__name__}")
    spec_u = unlabeled.element_spec
    if not (isinstance(spec_u, tf.TensorSpec) and len(spec_u.shape) == 4):
        unlabeled = make_unlabeled_dataset(unlabeled, crop=unlabeled_crop or spec.crop, input_size=spec.input_size,
                                           mean=spec.mean, std=spec.std, batch_size=unlabeled_batch_size, seed=seed,
                                           scheme=spec.scheme)

    generator = build_network(spec, **(builder_overrides or {}))
    discriminator = family.build_discriminator(spec, generator, **(discriminator_overrides or {}))
    n_train = int(train_src.cardinality().numpy())
    epoch_steps = steps_per_epoch  # given: each epoch is exactly that many batches (see make_dataset)
    if steps_per_epoch is None:
        if n_train <= 0:
            raise InvalidArgumentError("cannot infer steps_per_epoch from a dataset of unknown size; pass steps_per_epoch")
        steps_per_epoch = max(1, n_train // batch_size)
    common = dict(crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean, std=spec.std)
    out.mkdir(parents=True, exist_ok=True)
    backup = TrainingBackup(out / "backup")
    start_epoch = backup.initial_epoch
    labeled_ds = make_dataset(train_src, codec=generator.codec, training=True, batch_size=batch_size,
                              augment=augment if augment is not None else recipe.get("augment", family.augment_preset),
                              seed=seed, start_epoch=start_epoch, epochs=max(1, epochs - start_epoch),
                              steps_per_epoch=epoch_steps, **common)
    data = make_adversarial_dataset(labeled_ds, unlabeled, skip_unlabeled=start_epoch * steps_per_epoch)

    opt = dict(recipe.get("optimizer") or {"name": "adam", "learning_rate": 1e-3})
    weight_decay = float(opt.get("weight_decay") or 0.0)
    # {name: adam, weight_decay: wd} → AdamL2: PyTorch's coupled decay inside both optimizers (the trainer adds none)
    trainer = AdversarialLandmarkTrainer(generator, discriminator, adversarial_weight=adv["weight"],
                                         generator_objective=adv["generator_objective"], weight_decay=0.0,
                                         mean=spec.mean, std=spec.std)
    trainer.compile(g_optimizer=build_optimizer(recipe, steps_per_epoch, learning_rate=learning_rate, epochs=epochs),
                    d_optimizer=build_optimizer(recipe, steps_per_epoch, learning_rate=learning_rate, epochs=epochs),
                    g_loss=family.default_loss(spec, generator))
    # the checkpoints hold the trainer's weights: generator and discriminator
    val_ds = make_dataset(val_src, training=False, batch_size=batch_size, **common) if val_src is not None else None
    norm, cutoff = eval_protocol(labeled)
    cbs = run_callbacks(out, backup, val_ds=val_ds, scheme=spec.scheme, norm=norm, cutoff=cutoff, callbacks=callbacks)
    write_config(out, {
        "model": spec.name, "labeled": labeled if isinstance(labeled, str) else "<datasets>",
        "unlabeled": "<dataset>", "epochs": epochs, "batch_size": batch_size,
        "unlabeled_batch_size": unlabeled_batch_size, "learning_rate": learning_rate, "adversarial": adv,
        "weight_decay": weight_decay, "steps_per_epoch": steps_per_epoch, "seed": seed,
        "builder_overrides": builder_overrides or {}, "start_epoch": start_epoch,
    })
    t0 = time.time()
    history = trainer.fit(data, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=cbs, verbose=verbose)
    generator.zoo_spec = spec_dict(spec, builder_overrides)  # with the overrides it was built with
    atomic_save(generator, out / "final.keras")
    atomic_save(generator, out / "final.weights.h5", weights_only=True)
    atomic_save(discriminator, out / "discriminator.weights.h5", weights_only=True)
    hist = history_of(backup, history, train_seconds=time.time() - t0,
                      generator_updates=int(trainer.g_optimizer.iterations.numpy()),
                      discriminator_updates=int(trainer.d_optimizer.iterations.numpy()))
    write_history(out, hist)
    return generator, hist
