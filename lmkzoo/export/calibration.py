"""Representative crops for int8 calibration: the network inputs the model sees in use.

From uint8 crops as they are, from images (a folder or a list: faces found by the model's own ``predict``
path, the whole image when none is found), or from a TFDS split (each face cut with the model's crop policy
around the dataset's box or landmarks).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["representative_crops", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def representative_crops(landmarker, data, *, num: int = 128, data_dir=None) -> tuple[np.ndarray, dict]:
    """At most ``num`` uint8 crops ``(N, H, W, 3)`` for ``landmarker``'s input from ``data``, and a summary of where
    they come from (``{"crops": N, "source": ..., "images": ..., "faces": ..., "whole_images": ...}``).

    Images (a folder or a list) give the faces the model's own detector finds; an image with no face gives its whole
    image (with a warning). When no image holds a face at all, calibrating on them would quantize the model for
    inputs it never sees (several times the error of a face-calibrated file): that is refused.
    """
    w, h = landmarker.input_size
    if isinstance(data, np.ndarray) and data.ndim == 4:
        if data.shape[1:] != (h, w, 3) or data.dtype != np.uint8:
            raise InvalidArgumentError(f"representative crops must be uint8 (N, {h}, {w}, 3); got {data.dtype} {data.shape}")
        crops, summary = data, {"source": "uint8 crops"}
    elif isinstance(data, (str, Path)) and Path(data).is_dir():
        files = sorted(p for p in Path(data).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InvalidArgumentError(f"representative_data: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder {data}")
        crops, summary = _from_images(landmarker, files, num, where=f"the folder {data}")
    elif isinstance(data, (list, tuple)):
        crops, summary = _from_images(landmarker, list(data), num, where="the representative images")
    elif isinstance(data, (str, Path)) and Path(data).exists():
        raise InvalidArgumentError(f"representative_data {str(data)!r} is a file; give a folder of images, a list of "
                                   "images, uint8 crops (N, H, W, 3) or a TFDS split 'name[/config][:split]'")
    elif isinstance(data, str):
        from lmkzoo.errors import UnknownDatasetError

        try:
            crops = _from_tfds(landmarker, data, num, data_dir)
        except UnknownDatasetError as e:
            raise InvalidArgumentError(f"representative_data {data!r} is neither a folder nor a TFDS split ({e})") from None
        summary = {"source": f"TFDS {data}"}
    else:
        raise InvalidArgumentError("representative_data must be uint8 crops (N, H, W, 3), a folder of images, a list of "
                                   f"images or a TFDS split 'name[:split]'; got {type(data).__name__}")
    if not len(crops):
        raise InvalidArgumentError(f"the representative data ({summary['source']}) gave no face crops")
    crops = np.ascontiguousarray(crops[:num])
    return crops, {"crops": int(len(crops)), **summary}


def _from_images(landmarker, images, num, *, where):
    out, faces, whole, used = [], 0, 0, 0
    for img in images:
        crops, _ = landmarker.crops(img)
        used += 1
        if len(crops):
            faces += len(crops)
        else:
            crops, _ = landmarker.crops(img, detector=None)
            whole += 1
        out.append(crops)
        if sum(len(c) for c in out) >= num:
            break
    if not faces:
        raise InvalidArgumentError(
            f"int8 calibration found no face in {where} ({used} image(s)): a model calibrated on faceless images is "
            "quantized for inputs it never sees. Give images with faces, uint8 face crops (N, H, W, 3) or a TFDS split")
    if whole:
        warnings.warn(f"int8 calibration: no face in {whole} of {used} images of {where}; their whole image is used "
                      f"({faces} face crops, {whole} whole images)", stacklevel=3)
    return np.concatenate(out), {"source": where, "images": used, "faces": faces, "whole_images": whole}

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
