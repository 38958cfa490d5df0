"""The tf.data pipeline: examples → crop (the zoo spec's policy) → augment → normalise → codec targets → batches.

Example dicts (what the TFDS builders in ``datasets_tfds`` yield) hold ``image`` uint8 ``(H, W, 3)``,
``landmarks`` ``(K, 2)`` float32 image pixels, ``visible`` ``(K,)`` and ``bbox`` ``(4,)`` (x0, y0, x1, y1),
all in lmkzoo's pixel convention.

``make_dataset(..., training=True)`` yields ``(images, targets)`` for ``keras.Model.fit`` (targets from the
family codec's ``encode``); ``training=False`` is deterministic (no augmentation, no shuffle) and yields
``(images, info)`` with the crop-space ``landmarks``, ``visible``, the image→crop ``affine`` (and its
``inverse_affine``) and the original ``image_landmarks`` for evaluation in image pixels. Unlabelled sources
(no ``landmarks``) give ``(images, {affine, inverse_affine})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

from lmkzoo import geometry, schemes
from lmkzoo.crops import as_pair, template_kwargs
from lmkzoo.data import transforms as T
from lmkzoo.data.presets import get_preset
from lmkzoo.errors import InvalidArgumentError

__all__ = ["make_example_fn", "make_dataset", "load_tfds", "prepare_builder", "check_split", "compute_meanface"]

AUTOTUNE = tf.data.AUTOTUNE


def make_example_fn(*, crop: Mapping, input_size, scheme, augment=None, training: bool = False):
    """The per-example map: crop + (training) augmentation. Returns ``fn(example, seed=None) -> dict``.

    ``seed`` is a stateless ``[2]`` int seed, required when the augmentation is random (``make_dataset``
    derives one per example from the run seed, epoch and index).

    The example needs ``image`` and, by crop policy, ``bbox`` (``box``) or ``landmarks`` / ``five_points``
    (``five_point``, ``five_point_hull``; given ``five_points`` (5, 2), e.g. from a detector, win over the ones
    derived from the landmarks). Without ``landmarks`` (unlabelled images) only the image is transformed.

    Output: ``images`` uint8 (H, W, 3) crop, ``affine`` (image → crop, 2x3), ``inverse_affine`` (crop → image),
    ``flipped`` and, for labelled examples, ``landmarks`` (crop pixels), ``visible`` and ``image_landmarks``.
    """
    sch = schemes.get(scheme)
    aug = get_preset(augment) if training else {}
    w, h = int(input_size[0]), int(input_size[1])
    policy = crop.get("policy", "box")
    perm = tf.constant(sch.flip_permutation, tf.int32)
    scale, shift, square = as_pair(crop.get("scale"), 1.0), as_pair(crop.get("shift"), 0.0), bool(crop.get("square", False))
    fp_matrix = None
    if policy in ("five_point", "five_point_hull"):
        fp_matrix = T.five_point_matrix(sch)
        template = tf.constant(geometry.five_point_template((w, h), **template_kwargs(crop)), tf.float32)
        hull_scale = float(crop.get("scale", 2.0))
    elif policy not in ("box", "none"):
        raise InvalidArgumentError(f"unknown crop policy {policy!r}; allowed: box, five_point, five_point_hull, none")
    rot, sc, tr = aug.get("rotate", {}), aug.get("scale", {}), aug.get("translate", {})
    geo = any(k in aug for k in ("flip", "rotate", "scale", "translate"))

    def five_points(ex, pts):
        if "five_points" in ex:
            return tf.cast(ex["five_points"], tf.float32)
        if fp_matrix is None or pts is None:
            raise InvalidArgumentError(
                f"crop policy {policy!r} needs five points: scheme {sch.name!r} has no 5-point groups and the example "
                "carries no 'five_points'" if fp_matrix is None else
                f"crop policy {policy!r} needs 'five_points' or 'landmarks' in the example")
        return tf.matmul(fp_matrix, pts)

    def fn(ex, seed=None):
        if aug and seed is None:
            raise InvalidArgumentError("a training example needs a stateless seed for its augmentation")
        seeds = T.split_seed(seed, 8) if aug else [None] * 8
        image = ex["image"]
        labeled = "landmarks" in ex
        pts = tf.cast(ex["landmarks"], tf.float32) if labeled else None
        if labeled:
            vis = tf.cast(ex.get("visible", tf.ones(tf.shape(pts)[:1])), tf.float32)
        if policy == "box":
            m = T.box_affine(T.crop_box(ex["bbox"], scale, shift, square), (w, h))
        elif policy == "none":
            ih, iw = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
            m = T.box_affine(tf.stack([0.0, 0.0, iw, ih]), (w, h))
        else:
            fp = five_points(ex, pts)
            if policy == "five_point":
                m = T.similarity_to_template(fp, template)
            else:
                m = T.box_affine(T.five_point_hull_box(fp, hull_scale), (w, h))
        flipped = tf.constant(False)
        if geo:
            g, flipped = T.random_geometry(
                (w, h),
                flip_p=aug.get("flip", {}).get("p", 0.0),
                rotate_p=rot.get("p", 0.0), max_rotate_deg=rot.get("max_deg", 0.0), rotate_dist=rot.get("dist", "uniform"),
                scale_p=sc.get("p", 0.0), scale_range=tuple(sc.get("range", (1.0, 1.0))),
                scale_dist=sc.get("dist", "uniform"), scale_of_box=bool(sc.get("box", False)),
                translate_p=tr.get("p", 0.0), max_translate_frac=tr.get("max_frac", 0.0),
                seed=seeds[0],
            )
            m = (T.to3(g) @ T.to3(m))[:2]
        if "keep_inside" in aug and labeled:
            m = T.keep_points_inside(m, pts, vis, (w, h), float(aug["keep_inside"].get("margin", 0.0)))
        img = T.warp_image(image, m, (w, h))
        img = tf.cast(img, tf.float32)
        if "color" in aug:
            c = aug["color"]
            img = T.color_jitter(img, c.get("brightness", 0.0), c.get("contrast", 0.0), c.get("saturation", 0.0),
                                 p=c.get("p", 1.0), seed=seeds[1])
        if "channel_scale" in aug:
            lo_hi = aug["channel_scale"].get("range", (0.6, 1.4))
            img = T.channel_scale(img, float(lo_hi[0]), float(lo_hi[1]), p=aug["channel_scale"].get("p", 1.0), seed=seeds[6])
        if "pca_lighting" in aug:
            img = T.pca_lighting(img, aug["pca_lighting"].get("sigma", 0.05), p=aug["pca_lighting"].get("p", 1.0), seed=seeds[2])
        if "erase" in aug:
            e = aug["erase"]
            img = T.random_erasing(img, e.get("p", 0.5), e.get("max_frac", 0.4), e.get("min_frac", 0.0), e.get("fill", "color"),
                                   seed=seeds[3], mode=e.get("mode", "sides"), area=tuple(e.get("area", (0.02, 0.4))),
                                   aspect=tuple(e.get("aspect", (0.3, 1 / 0.3))))
        if "blur" in aug:
            b = aug["blur"]
            img = T.gaussian_blur(img, b.get("p", 0.3), b.get("max_sigma_frac", 5 / 256) * w, seed=seeds[4])
        if "grayscale" in aug:
            img = T.random_grayscale(img, aug["grayscale"].get("p", 0.2), seed=seeds[5])
        m = tf.cast(m, tf.float32)
        out = {
            "images": tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8),
            "affine": m,
            "inverse_affine": T.invert_affine(m),
            "flipped": flipped,
        }
        if labeled:
            p = T.affine_apply(pts, m)
            p = tf.where(flipped, tf.gather(p, perm), p)
            vis = tf.where(flipped, tf.gather(vis, perm), vis)
            if aug.get("clip_points", False):
                p = tf.clip_by_value(p, 0.0, tf.constant([float(w), float(h)]))
            out.update(landmarks=p, visible=vis, image_landmarks=pts)
        return out

    return fn


def _known_datasets() -> list[str]:
    """lmkzoo's builder names and ``builder/config`` names (for messages and "did you mean")."""
    import tensorflow_datasets as tfds

    import datasets_tfds

    names = []
    for b in datasets_tfds.BUILDERS:
        names.append(b)
        names += [f"{b}/{c.name}" for c in (tfds.builder_cls(b).BUILDER_CONFIGS or [])]
    return names


def prepare_builder(name: str, *, data_dir=None, manual_dir=None):
    """The TFDS builder ``name`` (``"ibug_300w/split1"``), ready to read.

    With ``manual_dir`` (the dataset's original files) the dataset is built first unless it is already; without
    it, an unprepared dataset must be one TFDS can download by itself.

    Raises:
        UnknownDatasetError: ``name`` is no registered dataset or config (with lmkzoo's names, and the closest).
        InvalidArgumentError: ``manual_dir`` is missing or empty, or the dataset is not built and needs one.
    """
    import tensorflow_datasets as tfds

    import datasets_tfds  # noqa: F401  (registers the builders)
    from lmkzoo.errors import UnknownDatasetError, did_you_mean

    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a dataset name must be a TFDS name such as 'wflw' or 'ibug_300w/split1'; got {name!r}")
    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else str(data_dir))
    except (tfds.core.registered.DatasetNotFoundError, ValueError):  # unknown name / config, malformed string
        known = _known_datasets()
        base = name.split("/")[0].split(":")[0]
        if base in datasets_tfds.BUILDERS:  # a known builder, an unknown config: list its configs
            allowed = [n for n in known if n.startswith(base + "/")]
            what = f"{base} has no config {name.split('/', 1)[-1]!r}; its configs: "
        else:
            allowed = list(datasets_tfds.BUILDERS)
            what = "lmkzoo's datasets (builder[/config]): "
        hint = did_you_mean(name, known)
        raise UnknownDatasetError(f"unknown dataset {name!r}" + (f"; {hint}" if hint else "") + f". {what}"
                                  + ", ".join(allowed)) from None
    if manual_dir is not None:
        folder = Path(manual_dir).expanduser()
        if not folder.is_dir() or not any(folder.iterdir()):
            raise InvalidArgumentError(
                f"manual_dir (--manual-dir) {folder} is {'empty' if folder.is_dir() else 'not a folder'}: it must hold "
                f"the original files of {name!r}, laid out as its MANUAL_DOWNLOAD_INSTRUCTIONS say")
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(folder)))
    elif not builder.is_prepared():
        if getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None):
            raise InvalidArgumentError(
                f"dataset {name!r} is not built in {builder.data_dir}: pass manual_dir (--manual-dir) with its original "
                "files (see its MANUAL_DOWNLOAD_INSTRUCTIONS), or data_dir (--data-dir) where it was built")
        builder.download_and_prepare()
    return builder


def check_split(builder, split: str) -> str:
    """``split`` if every part of it (``"train+test[:10%]"``) names a split of ``builder``, else
    :class:`~lmkzoo.errors.UnknownDatasetError` with the splits it has."""
    import re

    from lmkzoo.errors import UnknownDatasetError, did_you_mean

    have = sorted(builder.info.splits)
    parts = [re.sub(r"\[.*\]$", "", p.strip()) for p in str(split).split("+")]
    bad = [p for p in parts if p not in have]
    if bad:
        hint = did_you_mean(bad[0], have)
        raise UnknownDatasetError(f"dataset {builder.info.full_name!r} has no split {bad[0]!r}; splits: "
                                  f"{', '.join(have)}" + (f". {hint}" if hint else ""))
    return split


def load_tfds(name: str, split: str, *, data_dir=None, shuffle_files: bool = False, manual_dir=None):
    """A TFDS split of an lmkzoo builder (``"ibug_300w/split1"``, split ``"train"``), built from ``manual_dir``
    first when given (:func:`prepare_builder`; unknown names, configs and splits raise
    :class:`~lmkzoo.errors.UnknownDatasetError`)."""
    builder = prepare_builder(name, data_dir=data_dir, manual_dir=manual_dir)
    return builder.as_dataset(split=check_split(builder, split), shuffle_files=shuffle_files)


def make_dataset(source, *, crop: Mapping, input_size, scheme, mean, std, codec=None, split: str = "train",
                 training: bool = False, batch_size: int = 16, augment=None, data_dir=None, shuffle_buffer: int = 2048,
                 repeat: bool = False, seed: int = 0, start_epoch: int = 0, epochs: int = 1, num_shards: int = 1,
                 shard_index: int = 0, input_context=None, cache: bool = False, drop_remainder: bool | None = None,
                 epoch_multiple: int | None = None, steps_per_epoch: int | None = None):
    """Batched ``tf.data.Dataset`` for training or evaluation.

    * labelled, ``training=True``: ``(images, targets)`` with the targets from ``codec.encode`` (examples that carry
      an integer ``task``, a self-training sample type, pass it on: ``codec.encode(..., task=)``);
    * labelled, ``training=False`` (deterministic: no augmentation, no shuffle, order kept): ``(images, info)``
      with ``landmarks`` (crop), ``visible``, ``affine`` (image → crop), ``inverse_affine`` and
      ``image_landmarks``;
    * unlabelled sources (no ``landmarks``, e.g. ``face_image_folder``): ``(images, info)`` with ``affine`` and
      ``inverse_affine`` (augmented when ``training``).

    Training streams hold ``epochs`` epochs starting at ``start_epoch`` and are deterministic functions of
    ``(seed, epoch, index)``: epoch ``e`` is the source shuffled with a seed derived from ``(seed, e)``, every
    example augmented with a stateless seed derived from ``(seed, e, index)`` and batched (``drop_remainder``)
    inside the epoch, so one Keras epoch of ``len(source) // batch_size`` steps is exactly one pass and a run
    resumed at ``start_epoch`` sees the very batches an uninterrupted run would.

    Args:
        source: a ``tf.data.Dataset`` of example dicts, or a TFDS name (with ``split`` and ``data_dir``).
        crop, input_size, mean, std, scheme: the model's input contract (``ModelSpec.crop`` etc.).
        codec: the family codec; its ``encode`` makes the targets (required when training on labelled data).
        augment: preset name or dict (training only).
        repeat: evaluation streams only: repeat the deterministic stream. Training streams hold exactly
            ``epochs`` epochs (pass ``epochs``); ``repeat=True`` with ``training=True`` is an error.
        num_shards, shard_index: shard by worker (distributed input), applied before anything else;
            ``input_context`` (a ``tf.distribute.InputContext``) sets both, for
            ``strategy.distribute_datasets_from_function``.
        epoch_multiple: training epochs use the largest multiple of this many examples (the worker's share of
            the global batch), so replicas fed per-replica batches stay aligned with epochs.
        steps_per_epoch: training streams: each epoch is exactly this many global steps (``steps_per_epoch *
            epoch_multiple`` examples of this pipeline, ``* batch_size`` without ``epoch_multiple``) instead of one
            pass: fewer takes the first examples of the epoch's shuffled pass, more continues with further passes,
            each with its own fixed shuffle. Keras keeps one iterator across epochs when ``fit`` gets
            ``steps_per_epoch``, so this is what keeps its epochs and the stream's epochs (and resumed runs) aligned.
    """
    if isinstance(source, str):
        source = load_tfds(source, split, data_dir=data_dir, shuffle_files=False)
    labeled = "landmarks" in source.element_spec
    if training and labeled and codec is None:
        raise InvalidArgumentError("training datasets need the family codec (targets come from codec.encode)")
    if training and repeat:
        raise InvalidArgumentError("training streams hold exactly `epochs` epochs (deterministic and resumable); "
                                   f"pass epochs=N instead of repeat=True (got epochs={epochs})")
    if input_context is not None:
        num_shards, shard_index = input_context.num_input_pipelines, input_context.input_pipeline_id
    if not 0 <= shard_index < max(num_shards, 1):
        raise InvalidArgumentError(f"shard_index must be in [0, {num_shards}); got {shard_index}")
    ds = source
    if num_shards > 1:
        ds = ds.shard(num_shards, shard_index)
    # an optional per-example ``task`` (int, self-training sample type) travels to ``codec.encode(..., task=)``
    keep = ("image", "landmarks", "visible", "bbox", "five_points", "task")
    ds = ds.map(lambda ex: {k: ex[k] for k in keep if k in ex})
    if cache:
        ds = ds.cache()
    fn = make_example_fn(crop=crop, input_size=input_size, scheme=scheme, augment=augment, training=training)
    if training:
        src = ds
        n = int(src.cardinality().numpy())
        per_epoch = (n // epoch_multiple) * epoch_multiple if (epoch_multiple and n > 0) else -1
        rng = np.random.default_rng([int(seed or 0), 0x5EED])
        epoch_seeds = rng.integers(0, 2**62, size=(start_epoch + int(epochs), 2))  # row e: (shuffle, augment)

        need = steps_per_epoch * (epoch_multiple or batch_size) if steps_per_epoch else per_epoch

        def one_epoch(e):
            aug_seed = tf.constant([int(epoch_seeds[e, 1]), e], tf.int64)
            def one_pass(p):  # pass p of epoch e: its own fixed shuffle (pass 0 is the epoch's one-pass order)
                pass_seed = (int(epoch_seeds[e, 0]) + p * 0x9E3779B97F4A7C15) % (1 << 62)
                return src.shuffle(shuffle_buffer, seed=pass_seed, reshuffle_each_iteration=False).take(per_epoch)

            d = one_pass(0)
            if need != per_epoch and per_epoch > 0:  # fewer or more examples than one pass: cut at `need`
                for p in range(1, -(-need // per_epoch)):
                    d = d.concatenate(one_pass(p))
                d = d.take(need)
            elif need != per_epoch:  # unknown size: the same order again (augmentation still differs by index)
                d = d.repeat().take(need)
            d = d.enumerate()
            d = d.map(lambda i, ex: _with_task(fn(ex, tf.random.experimental.stateless_fold_in(aug_seed, i)), ex),
                      num_parallel_calls=AUTOTUNE)
            return d.batch(batch_size, drop_remainder=True if drop_remainder is None else drop_remainder)

        ds = one_epoch(start_epoch)
        for e in range(start_epoch + 1, start_epoch + int(epochs)):
            ds = ds.concatenate(one_epoch(e))
    else:
        # the face box travels beside the crop (bbox-normalised NME)
        ds = ds.map(lambda ex: {**fn(ex), "bbox": ex["bbox"]}, num_parallel_calls=AUTOTUNE)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(batch_size, drop_remainder=bool(drop_remainder))

    def finish(b):
        images = T.normalize_image(b["images"], mean, std)
        if training and labeled:
            if "task" in b:
                return images, codec.encode(b["landmarks"], b["visible"], task=b["task"])
            return images, codec.encode(b["landmarks"], b["visible"])
        keys = ("landmarks", "visible", "affine", "inverse_affine", "image_landmarks") if labeled else ("affine", "inverse_affine")
        if not training:
            keys += ("bbox",)
        return images, {k: b[k] for k in keys}

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def _with_task(out, ex):
    """The example's ``task`` (when it has one) beside the transformed example."""
    if "task" in ex:
        out = {**out, "task": tf.cast(ex["task"], tf.int32)}
    return out


def compute_meanface(source, *, crop, input_size, scheme, max_examples: int | None = None) -> np.ndarray:
    """Mean of the normalised (``/ input_size``) landmarks of the deterministic crops: PIPNet's mean face."""
    fn = make_example_fn(crop=crop, input_size=input_size, scheme=scheme, training=False)
    ds = source.map(lambda ex: fn({k: ex[k] for k in ("image", "landmarks", "visible", "bbox") if k in ex})["landmarks"],
                    num_parallel_calls=AUTOTUNE)
    if max_examples:
        ds = ds.take(max_examples)
    total, n = None, 0
    for p in ds.batch(256).as_numpy_iterator():
        s = p.sum(axis=0)
        total = s if total is None else total + s
        n += len(p)
    if not n:
        raise InvalidArgumentError("cannot compute a mean face from an empty dataset")
    return total / n / np.array([float(input_size[0]), float(input_size[1])])
