"""Unlabeled faces for semi-supervised training (LaplaceKL+D): examples → crops → normalised image batches.

The unlabeled branch needs crops made the way the labeled ones are (the paper runs a 5-point detector,
MTCNN, on both sets and cuts the same square hull around the five points, §4.2). Examples are dicts with
``image`` uint8 ``(H, W, 3)`` and, depending on the crop policy, ``five_points`` ``(5, 2)`` (``five_point``
/ ``five_point_hull``) or ``bbox`` ``(4,)`` (``box``); policy ``none`` resizes the whole image. A dataset of
bare image tensors is treated as ``{"image": ...}``. All coordinates are in lmkzoo's corner convention.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from lmkzoo import geometry, schemes
from lmkzoo.crops import as_pair, template_kwargs
from lmkzoo.data import transforms as T
from lmkzoo.errors import InvalidArgumentError

__all__ = ["make_unlabeled_dataset", "unlabeled_crop_fn"]

AUTOTUNE = tf.data.AUTOTUNE


def unlabeled_crop_fn(*, crop: Mapping, input_size, keys):
    """Per-example map ``example -> uint8 crop (H, W, 3)`` for the crop policy (``keys``: the example's keys)."""
    w, h = int(input_size[0]), int(input_size[1])
    policy = crop.get("policy", "box")
    need = {"box": "bbox", "five_point": "five_points", "five_point_hull": "five_points", "none": None}
    if policy not in need:
        raise InvalidArgumentError(f"unknown crop policy {policy!r}; allowed: {sorted(need)}")
    if need[policy] and need[policy] not in keys:
        raise InvalidArgumentError(
            f"crop policy {policy!r} needs '{need[policy]}' in each unlabeled example; the examples have {sorted(keys)}. "
            "Give the images five points (a 5-point detector) or boxes, or pass crop={'policy': 'none'}"
        )
    scale, shift = as_pair(crop.get("scale"), 1.0), as_pair(crop.get("shift"), 0.0)
    square = bool(crop.get("square", False))
    if policy == "five_point":
        template = tf.constant(geometry.five_point_template((w, h), **template_kwargs(crop)), tf.float32)

    def fn(ex):
        image = ex["image"]
        if policy == "box":
            m = T.box_affine(T.crop_box(tf.cast(ex["bbox"], tf.float32), scale, shift, square), (w, h))
        elif policy == "none":
            ih, iw = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
            m = T.box_affine(tf.stack([0.0, 0.0, iw, ih]), (w, h))
        else:
            fp = tf.cast(ex["five_points"], tf.float32)
            if policy == "five_point":
                m = T.similarity_to_template(fp, template)
            else:
                m = T.box_affine(T.five_point_hull_box(fp, float(crop.get("scale", 2.0))), (w, h))
        img = T.warp_image(image, m, (w, h))
        return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)

    return fn


def make_unlabeled_dataset(source, *, crop: Mapping, input_size, mean, std, batch_size: int = 16,
                           shuffle_buffer: int = 2048, repeat: bool = True, seed=None, drop_remainder: bool = True,
                           scheme=None):
    """Batches of normalised unlabeled crops ``(B, H, W, 3)`` float32.

    Args:
        source: a ``tf.data.Dataset`` of example dicts (``image`` and, per policy, ``five_points`` / ``bbox``)
            or of bare uint8 images (``face_image_folder`` or any folder of faces).
        crop, input_size, mean, std: the model's input contract (``ModelSpec.crop`` etc.).
        scheme: the landmark scheme of examples that carry ``landmarks`` (a detector's or a teacher's points, e.g.
            ``landmark_folder/lfw_teacher68``) but no ``five_points``: their five points place the crop, as a
            5-point detector's would (the paper runs MTCNN on the unlabeled faces). The landmarks go no further:
            the batches hold images only.
    """
    if not isinstance(source, tf.data.Dataset):
        raise InvalidArgumentError(f"source must be a tf.data.Dataset; got {type(source).__name__}")
    spec = source.element_spec
    if isinstance(spec, dict):
        if "image" not in spec:
            raise InvalidArgumentError(f"unlabeled examples need an 'image' key; got keys {sorted(spec)}")
        keys = set(spec)
        fp_matrix = None
        if "landmarks" in spec and "five_points" not in spec and scheme is not None:
            sch = schemes.get(scheme)
            k = spec["landmarks"].shape[0]
            fp_matrix = T.five_point_matrix(sch)
            if fp_matrix is None or k != sch.num_points:
                raise InvalidArgumentError(
                    f"unlabeled examples carry {k} landmarks; their five points need a scheme with 5-point groups "
                    f"and {k} points, got {sch.name!r} ({sch.num_points} points)")
            keys.add("five_points")

        def pick(ex):
            out = {k: ex[k] for k in ("image", "five_points", "bbox") if k in ex}
            if fp_matrix is not None:
                out["five_points"] = tf.matmul(fp_matrix, tf.cast(ex["landmarks"], tf.float32))
            return out

        ds = source.map(pick)
    elif isinstance(spec, tf.TensorSpec):
        ds = source.map(lambda img: {"image": img})
        keys = {"image"}
    else:
        raise InvalidArgumentError(f"unlabeled source must yield dicts or image tensors; got element_spec {spec}")
    fn = unlabeled_crop_fn(crop=crop, input_size=input_size, keys=keys)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(fn, num_parallel_calls=AUTOTUNE).batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda b: T.normalize_image(b, mean, std), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
