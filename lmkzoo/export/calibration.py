"""Representative crops for int8 calibration: the network inputs the model sees in use.

From uint8 crops as they are, from images (a folder or a list: faces found by the model's own ``predict``
path, the whole image when none is found), or from a TFDS split (each face cut with the model's crop policy
around the dataset's box or landmarks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["representative_crops", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def representative_crops(landmarker, data, *, num: int = 128, data_dir=None) -> np.ndarray:
    """At most ``num`` uint8 crops ``(N, H, W, 3)`` for ``landmarker``'s input from ``data``."""
    w, h = landmarker.input_size
    if isinstance(data, np.ndarray) and data.ndim == 4:
        if data.shape[1:] != (h, w, 3) or data.dtype != np.uint8:
            raise InvalidArgumentError(f"representative crops must be uint8 (N, {h}, {w}, 3); got {data.dtype} {data.shape}")
        crops = data
    elif isinstance(data, (str, Path)) and Path(data).is_dir():
        files = sorted(p for p in Path(data).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InvalidArgumentError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {data}")
        crops = _from_images(landmarker, files, num)
    elif isinstance(data, (list, tuple)):
        crops = _from_images(landmarker, list(data), num)
    elif isinstance(data, str):
        crops = _from_tfds(landmarker, data, num, data_dir)
    else:
        raise InvalidArgumentError("representative_data must be uint8 crops (N, H, W, 3), a folder of images, a list of "
                                   f"images or a TFDS split 'name[:split]'; got {type(data).__name__}")
    if not len(crops):
        raise InvalidArgumentError("the representative data gave no face crops")
    return np.ascontiguousarray(crops[:num])


def _from_images(landmarker, images, num):
    out = []
    for img in images:
        crops, _ = landmarker.crops(img)
        if not len(crops):
            crops, _ = landmarker.crops(img, detector=None)
        out.append(crops)
        if sum(len(c) for c in out) >= num:
            break
    return np.concatenate(out)


def _from_tfds(landmarker, name, num, data_dir):
    from lmkzoo import geometry, schemes
    from lmkzoo.crops import crop_affine
    from lmkzoo.data.pipeline import load_tfds

    dataset, _, split = name.partition(":")
    ds = load_tfds(dataset, split or "train", data_dir=data_dir, shuffle_files=False)
    scheme = schemes.get(landmarker.spec.scheme)
    size = landmarker.input_size
    out = []
    for ex in ds.take(num).as_numpy_iterator():
        img, pts = ex["image"], ex["landmarks"]
        five = scheme.five_points(pts) if pts.shape[0] == scheme.num_points else None
        m = crop_affine(landmarker.spec.crop, size, box=ex["bbox"], five_points=five, image_size=img.shape[1::-1])
        out.append(geometry.warp_affine(img, m, size))
    return np.stack(out) if out else np.zeros((0, size[1], size[0], 3), np.uint8)
