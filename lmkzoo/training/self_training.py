"""Self-training with curriculum (STC) for PIPNet (Jin et al. 2021, §3.3 and §4.5; docs/reference_facts.md §A9).

``train_self_training(name, labeled=..., unlabeled=...)`` runs PIPNet's GSSL schedule:

0. train on the labelled data alone (every example ``std``);
1. for each task X of the schedule (``['cls3', 'cls2', 'std', 'std', 'std']`` with the curriculum, ``['std'] * 3``
   for plain self-training):

   a. pseudo-label the unlabelled faces with the current network through the serving path
      (:class:`~lmkzoo.inference.landmarker.Landmarker`: the model's crop of each example's box, decoded landmarks
      mapped back to image pixels);
   b. store them as a TFDS-readable artefact (:mod:`lmkzoo.training.pseudo_labels`): a folder with a CSV in
      ``landmark_folder``'s ``csv`` layout
      (absolute image paths, ``x0, y0, ...`` and the face box) and ``provenance.json`` (model, the weights that
      labelled and their SHA-256, run folder, lmkzoo version, round, task), read back through the
      ``landmark_folder`` builder with a :class:`LandmarkFolderConfig` passed as ``config=``;
   c. re-initialise the network and train on the labelled examples (``std``) plus the pseudo-labelled ones typed
      as X, with a PIPNet whose ``stc_heads`` add the pooled score maps and :class:`~lmkzoo.losses.STCLoss`
      masking each term by type.

The paper's Task 1 / Task 2 / Task 3 are the types ``cls3`` (the 2x2 map at 256 px), ``cls2`` (4x4) and ``std``.
Each round's training is :func:`lmkzoo.training.supervised.train_supervised` (so epochs resume inside a round after a kill); the
loop itself resumes at round granularity: finished rounds (``rounds.json``) are skipped and a round's stored
pseudo-labels are reused when their provenance names the weights that the previous round ended with.

Run folder (``out_dir``): ``round0_std/`` (labelled only), ``round<r>_<task>/pseudo_labels/`` (the artefact) and
``round<r>_<task>/train/`` (that round's :func:`train` folder), ``unlabeled_images/`` (the unlabelled images as
files, written once), ``stc_config.json``, ``rounds.json`` (per-round history, pseudo-label statistics and the
gradient probe), ``history.json`` and ``final.keras`` / ``final.weights.h5``: the last round's network as a plain
PIPNet (no STC heads; the weights are the same).
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.training.pseudo_labels import (
    PROVENANCE,
    _materialise,
    _unlabeled_stream,
    load_pseudo_labels,
    pseudo_label,
    pseudo_label_config,
    write_pseudo_labels,
)

__all__ = ["CURRICULUM_TASKS", "PLAIN_TASKS", "PARADIGMS", "self_training_tasks", "stc_settings", "resolve_unlabeled",
           "source_box_adjust", "write_pseudo_labels", "pseudo_label_config", "load_pseudo_labels", "pseudo_label",
           "phase_gradients", "train_self_training"]

#: PIPNet's schedules (lib/train_gssl.py): with the curriculum, then plain self-training
CURRICULUM_TASKS = ("cls3", "cls2", "std", "std", "std")
PLAIN_TASKS = ("std", "std", "std")
_DEFAULTS = {"curriculum": True, "std_rounds": 3, "tasks": None, "box_adjust": None, "pseudo_batch_size": 32,
             "max_unlabeled": None, "paradigms": None}
#: PIPNet's training paradigms (§4.5, Table 7): supervised only, unsupervised domain adaptation (unlabelled images of
#: the target domains), generalizable semi-supervised learning (unlabelled images from elsewhere)
PARADIGMS = ("gsl", "uda", "gssl")


def self_training_tasks(curriculum: bool = True, std_rounds: int = 3) -> list[str]:
    """The sample type of the pseudo-labelled data per round: ``cls3, cls2`` (curriculum only), then ``std`` ×
    ``std_rounds`` (PIPNet: three, "the model converges after three iterations of Task 3")."""
    if int(std_rounds) < 0:
        raise InvalidArgumentError(f"std_rounds must be >= 0; got {std_rounds!r}")
    return (["cls3", "cls2"] if curriculum else []) + ["std"] * int(std_rounds)


def stc_settings(spec, **overrides) -> dict:
    """The recipe's ``stc`` section with defaults (``curriculum``, ``std_rounds``, ``tasks``, ``box_adjust``,
    ``pseudo_batch_size``, ``max_unlabeled``); ``overrides`` that are not None win."""
    from lmkzoo.losses.pipnet_stc_loss import STC_TASKS

    raw = spec.recipe.get("stc")
    if raw is None:
        raise InvalidArgumentError(f"{spec.name} has no recipe.stc section (self-training with curriculum)")
    raw = {} if raw is True else dict(raw)
    unknown = set(raw) - set(_DEFAULTS)
    if unknown:
        raise InvalidArgumentError(f"{spec.name}: unknown recipe.stc keys {sorted(unknown)}; allowed: {sorted(_DEFAULTS)}")
    s = {**_DEFAULTS, **raw, **{k: v for k, v in overrides.items() if v is not None}}
    tasks = list(s["tasks"]) if s["tasks"] is not None else self_training_tasks(bool(s["curriculum"]), s["std_rounds"])
    bad = [t for t in tasks if t not in STC_TASKS]
    if bad:
        raise InvalidArgumentError(f"unknown self-training tasks {bad}; allowed: {sorted(STC_TASKS)}")
    s["tasks"] = tasks
    paradigms = dict(s["paradigms"] or {})
    bad = sorted(set(paradigms) - set(PARADIGMS))
    if bad:
        raise InvalidArgumentError(f"{spec.name}: unknown recipe.stc.paradigms {bad}; allowed: {list(PARADIGMS)}")
    s["paradigms"] = paradigms
    return s


def source_box_adjust(target_crop, model_crop) -> dict:
    """The box adjustment that makes the model's ``box`` crop cut ``target_crop`` of a source's face boxes.

    ``target_crop`` (``{"scale": s | [sx, sy], "shift": [dx, dy]}``) is how the official preprocessing cuts that
    source's faces from its own boxes (e.g. WFLW: ``scale [1.2, 1.0], shift [0, 0.1]``); the model crops an
    (adjusted) box by its own ``scale`` / ``shift``. Returns ``{"scale", "shift"}`` for
    :func:`lmkzoo.crops.crop_box` such that ``model(adjust(box)) == target(box)``.
    """
    from lmkzoo.crops import as_pair

    if model_crop.get("policy", "box") != "box" or model_crop.get("square", False):
        raise InvalidArgumentError(f"per-source crops need a model that crops by a non-square box; got {dict(model_crop)}")
    (tx, ty), (tdx, tdy) = as_pair(target_crop.get("scale"), 1.0), as_pair(target_crop.get("shift"), 0.0)
    (mx, my), (mdx, mdy) = as_pair(model_crop.get("scale"), 1.0), as_pair(model_crop.get("shift"), 0.0)
    # model(adjust(b)): centre c + d_a·size + d_m·(s_a·size), size m·s_a·size; target: centre c + d_t·size, size t·size
    sx, sy = tx / mx, ty / my
    return {"scale": [sx, sy], "shift": [tdx - mdx * sx, tdy - mdy * sy]}


def resolve_unlabeled(spec, unlabeled):
    """What ``train(..., unlabeled=)`` means for a PIPNet self-training recipe.

    ``unlabeled`` is a paradigm of the recipe (``"gsl"``: no unlabelled data, supervised training, returns None;
    ``"uda"`` / ``"gssl"``: the recipe's sources), a TFDS name (``NAME[/CONFIG][:SPLIT]``; several joined by
    commas), a ``tf.data.Dataset``, or a list of sources: TFDS names or ``{"source": NAME, "crop": {...}}`` where
    ``crop`` is the official crop of that dataset's boxes (:func:`source_box_adjust`). Returns None or a list of
    ``{"source", "box_adjust"}``.
    """
    import tensorflow as tf

    if unlabeled is None or isinstance(unlabeled, tf.data.Dataset):
        return None if unlabeled is None else [{"source": unlabeled, "box_adjust": None}]
    paradigms = stc_settings(spec)["paradigms"]
    if isinstance(unlabeled, str):
        key = unlabeled.strip().lower()
        if key in PARADIGMS:
            if key == "gsl":
                return None
            if key not in paradigms or not paradigms[key].get("unlabeled"):
                raise InvalidArgumentError(f"{spec.name}'s recipe names no unlabeled data for paradigm {key!r}; pass "
                                           "TFDS names instead (--unlabeled NAME[:SPLIT][,NAME...])")
            unlabeled = paradigms[key]["unlabeled"]
        else:
            unlabeled = [u.strip() for u in unlabeled.split(",") if u.strip()]
    if not isinstance(unlabeled, (list, tuple)) or not unlabeled:
        raise InvalidArgumentError(f"unlabeled must be a paradigm {list(PARADIGMS)}, TFDS names, a tf.data.Dataset or "
                                   f"a non-empty list of sources; got {unlabeled!r}")
    out = []
    for u in unlabeled:
        if isinstance(u, (str, tf.data.Dataset)):
            out.append({"source": u, "box_adjust": None})
        elif isinstance(u, dict) and "source" in u and set(u) <= {"source", "crop"}:
            adjust = source_box_adjust(u["crop"], spec.crop) if u.get("crop") else None
            out.append({"source": u["source"], "box_adjust": adjust})
        elif isinstance(u, dict) and "source" in u and set(u) <= {"source", "box_adjust"}:  # resolved already
            out.append({"source": u["source"], "box_adjust": u.get("box_adjust")})
        else:
            raise InvalidArgumentError(f"an unlabeled source is a TFDS name or {{'source': NAME, 'crop': {{...}}}}; got {u!r}")
    return out


# ---------------------------------------------------------------------------------------------- gradient probe
def phase_gradients(network, loss, images, targets) -> dict:
    """L2 norms of the gradient of ``loss`` on one batch w.r.t. each network output map and the head kernels:
    shows which heads a batch of a given sample type trains (``{"outputs": {...}, "kernels": {...}}``)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        out = network(images, training=False)
        value = tf.reduce_mean(loss.call(targets, out))
    names = sorted(out)
    heads = [n for n in ("cls_layer", "x_layer", "y_layer", "nb_x_layer", "nb_y_layer")
             if any(layer.name == n for layer in network.layers)]
    kernels = [network.get_layer(n).kernel for n in heads]
    grads = tape.gradient(value, [out[n] for n in names] + kernels)
    norm = lambda g: 0.0 if g is None else float(tf.norm(g))  # noqa: E731
    return {"loss": float(value), "outputs": {n: norm(g) for n, g in zip(names, grads[: len(names)])},
            "kernels": {n: norm(g) for n, g in zip(heads, grads[len(names):])}}


# ---------------------------------------------------------------------------------------------- the loop
def _examples(ds, task_id: int):
    """Example dicts reduced to the keys the pipeline reads, typed with ``task``."""
    import tensorflow as tf

    return ds.map(lambda ex: {"image": ex["image"], "landmarks": tf.cast(ex["landmarks"], tf.float32),
                              "visible": tf.cast(ex["visible"], tf.float32) if "visible" in ex
                              else tf.ones(tf.shape(ex["landmarks"])[:1], tf.float32),
                              "bbox": tf.cast(ex["bbox"], tf.float32), "task": tf.constant(task_id, tf.int32)})


def _mix(labeled, pseudo, n_labeled: int, n_pseudo: int, seed: int):
    """Labelled and pseudo-labelled examples interleaved in a fixed random order (known cardinality), so the
    training stream's shuffle buffer mixes them at any size."""
    import tensorflow as tf

    order = np.random.default_rng([seed, 0x57C]).permutation(np.r_[np.zeros(n_labeled, np.int64), np.ones(n_pseudo, np.int64)])
    mixed = tf.data.Dataset.choose_from_datasets([labeled, pseudo], tf.data.Dataset.from_tensor_slices(order))
    return mixed.apply(tf.data.experimental.assert_cardinality(n_labeled + n_pseudo))


def _plain_copy(network, spec, overrides):
    """The same network without STC heads (identical weights): what is saved and exported."""
    from lmkzoo.families.base import build_network, spec_dict

    plain = build_network(spec, **{**overrides, "stc_heads": False})
    plain.set_weights(network.get_weights())
    plain.zoo_spec = spec_dict(spec, overrides, drop=("stc_heads",))
    return plain


def train_self_training(name, *, labeled, unlabeled, curriculum: bool | None = None, tasks=None, rounds: int | None = None,
                        std_rounds: int | None = None, data_dir=None, manual_dir=None, train_split: str = "train",
                        val_split: str | None = "validation", unlabeled_split: str = "train", out_dir="runs/stc",
                        epochs: int | None = None, batch_size: int | None = None, learning_rate: float | None = None,
                        steps_per_epoch: int | None = None, builder_overrides: dict | None = None, augment=None,
                        box_adjust: dict | None = None, max_unlabeled: int | None = None, strategy="one_device",
                        precision: str | None = None, verbose="auto", seed: int = 0, eval_every: int = 1, callbacks=None):
    """PIPNet self-training (with curriculum by default) of zoo model ``name`` (a PIPNet whose recipe has ``stc``).

    Args:
        name: ``arch[.tag]`` or a :class:`~lmkzoo.registry.ModelSpec` (e.g. a shrunk copy).
        labeled: a TFDS name (``train_split`` / ``val_split``), a ``(train, val)`` pair of example datasets (``val``
            may be None) or one example dataset.
        unlabeled: a TFDS name (``"face_image_folder/folder"``, optionally ``":split"``; default split
            ``unlabeled_split``; several joined by commas), a ``tf.data.Dataset`` of examples (``image`` [+ ``bbox``])
            or images, a paradigm of the recipe (``"uda"``, ``"gssl"``) or a list of sources
            (:func:`resolve_unlabeled`). Faces are cropped from their box (the whole image without one) with the
            model's crop policy, after the source's own box convention.
        curriculum, std_rounds, tasks: the schedule (default the recipe's ``stc`` section: curriculum
            ``cls3, cls2, std, std, std``; ``curriculum=False``: ``std`` × 3); ``tasks`` gives it explicitly.
        rounds: run only the first ``rounds`` self-training rounds of the schedule.
        epochs, batch_size, learning_rate, steps_per_epoch, augment, builder_overrides, strategy, precision,
            eval_every, callbacks: as :func:`lmkzoo.training.train.train`, for every round (the paper trains every
            round as long as the supervised run).
        box_adjust: ``{"scale": s, "shift": [dx, dy]}`` applied to the unlabelled boxes first (paper: dataset
            specific box conventions).
        max_unlabeled: use at most this many unlabelled images.
    Returns:
        ``(network, history)``: the last round's network as a plain PIPNet, and ``{"rounds": {...}, "tasks",
        "train_seconds", "loss", "val_nme"}``; ``rounds["round<r>_<task>"]`` (also ``rounds.json``, a list) holds
        that round's task, Keras history, pseudo-label statistics and the gradient probe (:func:`phase_gradients`
        on a labelled and a pseudo-labelled batch); ``loss`` / ``val_nme`` are the rounds' last-epoch values.
    """
    import lmkzoo
    from lmkzoo.data.pipeline import compute_meanface, make_dataset
    from lmkzoo.families.base import build_network, get_family
    from lmkzoo.hub import sha256_file
    from lmkzoo.losses.pipnet_stc_loss import STC_TASKS
    from lmkzoo.training.run import atomic_save, spec_of, train_val_sources
    from lmkzoo.training.supervised import train_supervised

    spec = spec_of(name)
    if "self_training" not in get_family(spec.family).trainers:
        raise InvalidArgumentError(f"self-training with curriculum is PIPNet's; {spec.name} is family {spec.family!r}")
    settings = stc_settings(spec, curriculum=curriculum, std_rounds=std_rounds, tasks=tasks, box_adjust=box_adjust,
                            max_unlabeled=max_unlabeled)
    schedule = settings["tasks"][: rounds if rounds is not None else None]
    family = get_family("pipnet")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    train_src, val_src = train_val_sources(labeled, train_split, val_split, data_dir, manual_dir)
    n_labeled = int(train_src.cardinality().numpy())
    if n_labeled <= 0:
        raise InvalidArgumentError("the labeled training set must have a known, non-zero size")
    sources = resolve_unlabeled(spec, unlabeled)
    if sources is None:
        raise InvalidArgumentError("self-training needs unlabeled faces; paradigm 'gsl' is plain supervised training: "
                                   "lmkzoo.train(name, data=...) without unlabeled=")
    stream, unlabeled_desc = _unlabeled_stream(sources, split=unlabeled_split, data_dir=data_dir)

    overrides = dict(builder_overrides or {})
    config = {"model": spec.name, "labeled": labeled if isinstance(labeled, str) else "<datasets>",
              "unlabeled": unlabeled_desc, "tasks": schedule, "settings": settings, "epochs": epochs,
              "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed, "builder_overrides": overrides}
    cfg_file = out / "stc_config.json"
    if cfg_file.exists():
        old = json.loads(cfg_file.read_text())
        if old.get("model") != spec.name:
            raise InvalidArgumentError(f"{out} holds a self-training run of {old.get('model')}; this one trains "
                                       f"{spec.name}: use another out_dir")
        overrides.setdefault("meanface", old["builder_overrides"].get("meanface"))
    if "meanface" not in overrides or overrides["meanface"] is None:
        # one mean face (neighbour tables) from the labelled data for every round
        mf = compute_meanface(train_src, crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme)
        overrides["meanface"] = mf.round(6).tolist()
    config["builder_overrides"] = overrides
    cfg_file.write_text(json.dumps(config, indent=2, default=str))
    stc_overrides = {**overrides, "stc_heads": True}

    rounds_file = out / "rounds.json"
    done = json.loads(rounds_file.read_text()) if rounds_file.exists() else []
    # finished rounds are kept while they agree with this schedule (round 0, labelled only, is common to all)
    full = ["std", *schedule]
    agree = 0
    while agree < min(len(done), len(full)) and done[agree].get("task") == full[agree] and Path(done[agree]["weights"]).exists():
        agree += 1
    done = done[:agree]
    common = dict(crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean, std=spec.std)
    train_kw = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
                    augment=augment, strategy=strategy, precision=precision, verbose=verbose, seed=seed,
                    eval_every=eval_every, callbacks=callbacks)
    labeled_typed = _examples(train_src, STC_TASKS["std"])
    probe_bs = int(batch_size or spec.recipe.get("batch_size", 16))
    items = None
    network, weights_file = None, None
    t_start = time.time()
    for r, task in enumerate(full):
        rdir = out / f"round{r}_{task}"
        record = {"round": r, "task": task, "task_id": STC_TASKS[task]}
        if r < len(done):
            network, weights_file = None, Path(done[r]["weights"])  # finished before: loaded when needed
            continue
        if network is None and weights_file is not None:
            network = build_network(spec, **stc_overrides)
            network.load_weights(str(weights_file))
        if r == 0:
            data = (labeled_typed, val_src)
            pseudo_typed = None
        else:
            # (a) pseudo-label with the current network, (b) store / re-read the artefact
            if items is None:
                items = _materialise(stream, out / "unlabeled_images", max_images=settings["max_unlabeled"])
            pdir = rdir / "pseudo_labels"
            wsha = done[r - 1]["weights_sha256"]
            meta_file = pdir / PROVENANCE
            fresh = meta_file.exists() and json.loads(meta_file.read_text()).get("weights_sha256") == wsha
            t0 = time.time()
            if not fresh:
                import shutil

                # new labels: a training state left in this round's folder (other labels) must not be resumed
                shutil.rmtree(rdir / "train", ignore_errors=True)
                pts, scores, boxes = pseudo_label(network, spec, items, batch_size=int(settings["pseudo_batch_size"]),
                                                  box_adjust=settings["box_adjust"])
                write_pseudo_labels(pdir, images=[it["file"] for it in items], points=pts, boxes=boxes, scores=scores,
                                    scheme=spec.scheme, provenance={
                                        "model": spec.name, "family": spec.family, "weights": str(weights_file),
                                        "weights_sha256": wsha, "run": str(out.resolve()),
                                        "lmkzoo_version": lmkzoo.__version__, "round": r, "task": task,
                                        "labelled_by_round": r - 1, "unlabeled": unlabeled_desc,
                                        "crop": dict(spec.crop), "box_adjust": settings["box_adjust"],
                                        "input_size": list(spec.input_size),
                                        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                                    })
            pseudo, meta = load_pseudo_labels(pdir, task=task)
            record["pseudo_labels"] = {"folder": str(pdir), "num_faces": meta["num_faces"], "seconds": time.time() - t0,
                                       "reused": fresh}
            pseudo_typed = _examples(pseudo, STC_TASKS[task])
            data = (_mix(labeled_typed, pseudo_typed, n_labeled, int(meta["num_faces"]), seed + r), val_src)
        # (c) a freshly initialised network on labelled (std) + pseudo-labelled (typed) data
        network, hist = train_supervised(spec, data=data, out_dir=rdir / "train", builder_overrides=stc_overrides, **train_kw)
        weights_file = rdir / "train" / "final.weights.h5"
        record["history"] = hist
        record["weights"] = str(weights_file)
        record["weights_sha256"] = sha256_file(weights_file)
        # which heads this round's batches train: one labelled and one pseudo-labelled batch
        loss = family.default_loss(spec, network)
        probe = {}
        for which, src in (("labeled", labeled_typed), ("pseudo", pseudo_typed)):
            if src is None:
                continue
            ds = make_dataset(src.take(probe_bs), codec=network.codec, training=True, batch_size=probe_bs,
                              drop_remainder=False, augment="none", seed=seed, epochs=1, **common)
            images, targets = next(iter(ds))
            probe[which] = phase_gradients(network, loss, images, targets)
        record["phase_gradients"] = probe
        done = done[:r] + [record]
        rounds_file.write_text(json.dumps(done, indent=2, default=float))
    if network is None:
        network = build_network(spec, **stc_overrides)
        network.load_weights(str(weights_file))
    final = _plain_copy(network, spec, overrides)
    atomic_save(final, out / "final.keras")
    atomic_save(final, out / "final.weights.h5", weights_only=True)
    # per-round records keyed by folder (a dict: the CLI prints only the last value of each list)
    summary = {"tasks": schedule, "rounds": {f"round{d['round']}_{d['task']}": d for d in done},
               "train_seconds": time.time() - t_start,
               "loss": [r["history"]["loss"][-1] for r in done if "loss" in r["history"]]}
    for key in ("val_nme",):
        vals = [r["history"][key][-1] for r in done if key in r["history"]]
        if vals:
            summary[key] = vals
    (out / "history.json").write_text(json.dumps(summary, indent=2, default=float))
    return final, summary
