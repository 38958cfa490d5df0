"""Reading and checking images: every entry point turns its input into an RGB uint8 ``(H, W, 3)`` array here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidImageError

__all__ = ["read_image", "as_rgb_uint8", "load_images"]


def read_image(path) -> np.ndarray:
    """Read an image file as RGB uint8. Grayscale and RGBA files are converted; anything unreadable raises
    :class:`InvalidImageError` naming the file."""
    import cv2

    p = Path(os.fspath(path))
    if not p.exists():
        raise InvalidImageError(f"image file not found: {p}")
    if p.is_dir():
        raise InvalidImageError(f"expected an image file, got a directory: {p}")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InvalidImageError(f"cannot decode image {p} (corrupt file or unsupported format; {data.size} bytes)")
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def as_rgb_uint8(image, *, what: str = "image") -> np.ndarray:
    """Check an in-memory image: uint8 ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA)."""
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"{what} must be a path or a numpy array; got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidImageError(
            f"{what} must be uint8 RGB (0-255); got dtype {image.dtype}. Convert with (img * 255).astype(np.uint8) "
            "if it holds floats in [0, 1]"
        )
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InvalidImageError(f"{what} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InvalidImageError(f"{what} is too small: shape {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    return image


def load_images(images):
    """``images`` (a path, an array, or a list of them) → ``(list of RGB arrays, was_single)``."""
    single = isinstance(images, (str, os.PathLike, np.ndarray))
    items = [images] if single else list(images)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            out.append(read_image(item))
        else:
            out.append(as_rgb_uint8(item, what=f"image {i}" if not single else "image"))
    return out, single
