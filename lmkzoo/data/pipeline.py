"""The tf.data pipeline: examples → crop (the zoo spec's policy) → augment → normalise → codec targets → batches.

Example dicts (what the TFDS builders in ``datasets_tfds`` yield) hold ``image`` uint8 ``(H, W, 3)``,
``landmarks`` ``(K, 2)`` float32 image pixels, ``visible`` ``(K,)`` and ``bbox`` ``(4,)`` (x0, y0, x1, y1),
all in lmkzoo's pixel convention.

``make_dataset(..., training=True)`` yields ``(images, targets)`` for ``keras.Model.fit`` (targets from the
family codec's ``encode``); ``training=False`` is deterministic (no augmentation, no shuffle) and yields
``(images, info)`` with the crop-space ``landmarks``, ``visible``, the image→crop ``affine`` and the
original ``image_landmarks`` for evaluation in image pixels.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from lmkzoo import geometry, schemes
from lmkzoo.data import transforms as T
from lmkzoo.data.presets import get_preset
from lmkzoo.errors import InvalidArgumentError

__all__ = ["make_example_fn", "make_dataset", "load_tfds", "compute_meanface"]

AUTOTUNE = tf.data.AUTOTUNE


def _pair(v, default):
    if v is None:
        return (float(default), float(default))
    if np.isscalar(v):
        return (float(v), float(v))
    return (float(v[0]), float(v[1]))


def make_example_fn(*, crop: Mapping, input_size, scheme, augment=None, training: bool = False):
    """The per-example map: crop + (training) augmentation.

    Returns ``fn(example, seed=None) -> dict``; ``seed`` is a stateless ``[2]`` int seed, required when the
    augmentation is random (``make_dataset`` derives one per example from the run seed, epoch and index).
    """
    sch = schemes.get(scheme)
    aug = get_preset(augment) if training else {}
    w, h = int(input_size[0]), int(input_size[1])
    policy = crop.get("policy", "box")
    perm = tf.constant(sch.flip_permutation, tf.int32)
    scale, shift, square = _pair(crop.get("scale"), 1.0), _pair(crop.get("shift"), 0.0), bool(crop.get("square", False))
    if policy in ("five_point", "five_point_hull"):
        if sch.five_point_indices is None:
            raise InvalidArgumentError(f"crop policy {policy!r} needs 5-point groups, and scheme {sch.name!r} has none")
        fp_matrix = tf.constant(schemes.conversion_matrix(sch, "five_point")[..., 0], tf.float32)
        kw = {}
        if crop.get("template_scale") is not None:
            kw["face_scale"] = float(crop["template_scale"])
        if crop.get("template_shift") is not None:
            kw["shift_y"] = float(crop["template_shift"])
        template = tf.constant(geometry.five_point_template((w, h), **kw), tf.float32)
    elif policy not in ("box", "none"):
        raise InvalidArgumentError(f"unknown crop policy {policy!r}; allowed: box, five_point, five_point_hull, none")
    geo = {k: aug[k] for k in ("flip", "rotate", "scale", "translate") if k in aug}

    def fn(ex, seed=None):
        if aug and seed is None:
            raise InvalidArgumentError("a training example needs a stateless seed for its augmentation")
        seeds = T.split_seed(seed, 8) if aug else [None] * 8
        image = ex["image"]
        pts = tf.cast(ex["landmarks"], tf.float32)
        vis = tf.cast(ex.get("visible", tf.ones(tf.shape(pts)[:1])), tf.float32)
        if policy == "box":
            m = T.box_affine(T.crop_box(ex["bbox"], scale, shift, square), (w, h))
        elif policy == "none":
            ih, iw = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
            m = T.box_affine(tf.stack([0.0, 0.0, iw, ih]), (w, h))
        else:
            fp = tf.matmul(fp_matrix, pts)
            if policy == "five_point":
                m = T.similarity_to_template(fp, template)
            else:
                m = T.box_affine(T.five_point_hull_box(fp, float(crop.get("scale", 2.0))), (w, h))
        flipped = tf.constant(False)
        if geo:
            g, flipped = T.random_geometry(
                (w, h),
                flip_p=geo.get("flip", {}).get("p", 0.0),
                rotate_p=geo.get("rotate", {}).get("p", 0.0), max_rotate_deg=geo.get("rotate", {}).get("max_deg", 0.0),
                scale_p=geo.get("scale", {}).get("p", 0.0), scale_range=tuple(geo.get("scale", {}).get("range", (1.0, 1.0))),
                translate_p=geo.get("translate", {}).get("p", 0.0), max_translate_frac=geo.get("translate", {}).get("max_frac", 0.0),
                seed=seeds[0],
            )
            m = T.to3(g) @ T.to3(m)
            m = m[:2]
        img = T.warp_image(image, m, (w, h))
        p = T.affine_apply(pts, m)
        p = tf.where(flipped, tf.gather(p, perm), p)
        vis = tf.where(flipped, tf.gather(vis, perm), vis)
        img = tf.cast(img, tf.float32)
        if "color" in aug:
            c = aug["color"]
            img = T.color_jitter(img, c.get("brightness", 0.0), c.get("contrast", 0.0), c.get("saturation", 0.0),
                                 p=c.get("p", 1.0), seed=seeds[1])
        if "channel_scale" in aug:
            cs = aug["channel_scale"]
            img = T.channel_scale(img, *cs.get("range", (0.6, 1.4)), p=cs.get("p", 1.0), seed=seeds[6])
        if "pca_lighting" in aug:
            img = T.pca_lighting(img, aug["pca_lighting"].get("sigma", 0.05), seed=seeds[2])
        if "erase" in aug:
            e = aug["erase"]
            img = T.random_erasing(img, e.get("p", 0.5), e.get("max_frac", 0.4), e.get("min_frac", 0.0), e.get("fill", "color"),
                                   seed=seeds[3])
        if "blur" in aug:
            b = aug["blur"]
            img = T.gaussian_blur(img, b.get("p", 0.3), b.get("max_sigma_frac", 5 / 256) * w, seed=seeds[4])
        if "grayscale" in aug:
            img = T.random_grayscale(img, aug["grayscale"].get("p", 0.2), seed=seeds[5])
        if aug.get("clip_points", False):
            p = tf.clip_by_value(p, 0.0, tf.constant([float(w), float(h)]))
        out = {
            "images": tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8),
            "landmarks": p,
            "visible": vis,
            "affine": tf.cast(m, tf.float32),
            "image_landmarks": pts,
        }
        return out

    return fn


def load_tfds(name: str, split: str, *, data_dir=None, shuffle_files: bool = False, download: bool = True):
    """A TFDS split of an lmkzoo builder (``"ibug_300w:..."`` style names are passed to ``tfds.builder``)."""
    import tensorflow_datasets as tfds

    import datasets_tfds  # noqa: F401  (registers the builders)

    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    return builder.as_dataset(split=split, shuffle_files=shuffle_files)


def make_dataset(source, *, crop: Mapping, input_size, scheme, mean, std, codec=None, split: str = "train",
                 training: bool = False, batch_size: int = 16, augment=None, data_dir=None, shuffle_buffer: int = 2048,
                 repeat: bool = False, seed: int = 0, start_epoch: int = 0, epochs: int = 1, num_shards: int = 1, shard_index: int = 0,
                 cache: bool = False, drop_remainder: bool | None = None, epoch_multiple: int | None = None):
    """Batched ``tf.data.Dataset`` for training (``training=True``: ``(images, targets)``) or evaluation.

    Training streams hold ``epochs`` epochs starting at ``start_epoch`` and are deterministic functions of
    ``(seed, epoch, index)``: epoch ``e`` is the source shuffled with a seed derived from ``(seed, e)``, every
    example augmented with a stateless seed derived from ``(seed, e, index)``, batched with
    ``drop_remainder`` inside the epoch, so one Keras epoch (of ``len(source) // batch_size`` steps) is
    exactly one pass and a run resumed at ``start_epoch`` sees the very batches an uninterrupted run would.

    Args:
        source: a ``tf.data.Dataset`` of example dicts, or a TFDS name (with ``split`` and ``data_dir``).
        crop, input_size, mean, std, scheme: the model's input contract (``ModelSpec.crop`` etc.).
        codec: the family codec; its ``encode`` makes the targets (required when ``training``).
        augment: preset name or dict (training only).
        repeat: evaluation only: repeat the deterministic evaluation stream.
        num_shards, shard_index: shard by worker (distributed input), applied before anything else.
        epoch_multiple: training epochs use the largest multiple of this many examples (the worker's share of
            the global batch), so replicas fed per-replica batches stay aligned with epochs.
    """
    if isinstance(source, str):
        source = load_tfds(source, split, data_dir=data_dir, shuffle_files=False)
    if training and codec is None:
        raise InvalidArgumentError("training datasets need the family codec (targets come from codec.encode)")
    ds = source
    if num_shards > 1:
        ds = ds.shard(num_shards, shard_index)
    keep = ("image", "landmarks", "visible", "bbox")
    ds = ds.map(lambda ex: {k: ex[k] for k in keep if k in ex})
    if cache:
        ds = ds.cache()
    fn = make_example_fn(crop=crop, input_size=input_size, scheme=scheme, augment=augment, training=training)
    if training:
        src = ds
        n = int(src.cardinality().numpy())
        per_epoch = (n // epoch_multiple) * epoch_multiple if (epoch_multiple and n > 0) else -1
        rng = np.random.default_rng([int(seed), 0x5EED])
        epoch_seeds = rng.integers(0, 2**62, size=(start_epoch + int(epochs), 2))  # row e: (shuffle, augment)

        def one_epoch(e):
            aug_seed = tf.constant([int(epoch_seeds[e, 1]), e], tf.int64)
            d = src.shuffle(shuffle_buffer, seed=int(epoch_seeds[e, 0]), reshuffle_each_iteration=False)
            d = d.take(per_epoch).enumerate()
            d = d.map(lambda i, ex: fn(ex, tf.random.experimental.stateless_fold_in(aug_seed, i)), num_parallel_calls=AUTOTUNE)
            return d.batch(batch_size, drop_remainder=True if drop_remainder is None else drop_remainder)

        ds = one_epoch(start_epoch)
        for e in range(start_epoch + 1, start_epoch + int(epochs)):
            ds = ds.concatenate(one_epoch(e))
    else:
        ds = ds.map(lambda ex: fn(ex), num_parallel_calls=AUTOTUNE)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(batch_size, drop_remainder=bool(drop_remainder))

    def finish(b):
        images = T.normalize_image(b["images"], mean, std)
        if training:
            return images, codec.encode(b["landmarks"], b["visible"])
        info = {k: b[k] for k in ("landmarks", "visible", "affine", "image_landmarks")}
        return images, info

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


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
