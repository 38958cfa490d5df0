"""Reading and checking images: every entry point turns its input into an RGB uint8 ``(H, W, 3)`` array here.

An image is a path, a uint8 array (RGB, grayscale or RGBA), a PIL image, or the encoded bytes of an image file;
anything else, and any file or bytes that do not decode (including images whose declared size is beyond what
OpenCV will allocate), raises :class:`~lmkzoo.errors.InvalidImageError` naming what was received.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidImageError

__all__ = ["read_image", "decode_image", "as_rgb_uint8", "to_rgb", "is_image", "load_images"]

_ACCEPTED = "a path, a uint8 (H, W, 3) RGB array, a PIL image or the bytes of an image file"


def read_image(path) -> np.ndarray:
    """Read an image file as RGB uint8. Grayscale and RGBA files are converted; anything unreadable raises
    :class:`InvalidImageError` naming the file."""

    p = Path(os.fspath(path))
    if not p.exists():
        raise InvalidImageError(f"image file not found: {p}")
    if p.is_dir():
        raise InvalidImageError(f"expected an image file, got a directory: {p}")
    return decode_image(np.fromfile(str(p), dtype=np.uint8), what=f"image {p}")


def decode_image(data, *, what: str = "image bytes") -> np.ndarray:
    """Decode an encoded image file (``bytes`` or a uint8 buffer) as RGB uint8; :class:`InvalidImageError` names
    ``what`` when it does not decode."""
    import cv2

    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as e:  # e.g. a header declaring more pixels than OpenCV allocates (CV_IO_MAX_IMAGE_PIXELS)
        reason = next((line for line in str(e).splitlines() if "error:" in line), str(e)).split("error:", 1)[-1].strip()
        raise InvalidImageError(f"cannot decode {what} ({data.size} bytes): {reason}") from None
    if img is None:
        raise InvalidImageError(f"cannot decode {what} (corrupt file or unsupported format; {data.size} bytes)")
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
        raise InvalidImageError(f"{what} must be {_ACCEPTED}; got {type(image).__name__}")
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


def _is_pil(image) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "convert") and hasattr(image, "size")


def is_image(item) -> bool:
    """True for one image (a path, an array, a PIL image, encoded bytes); False for a list of them."""
    return isinstance(item, (str, os.PathLike, np.ndarray, bytes, bytearray, memoryview)) or _is_pil(item)


def to_rgb(image, *, what: str = "image") -> np.ndarray:
    """One image of any accepted kind (:data:`_ACCEPTED`) → RGB uint8 ``(H, W, 3)``."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(image, what=what)
    if _is_pil(image):
        return as_rgb_uint8(np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB")), what=what)
    if isinstance(image, np.ndarray):
        return as_rgb_uint8(image, what=what)
    raise InvalidImageError(f"{what} must be {_ACCEPTED}; got {type(image).__name__} {image!r:.60}")


def load_images(images):
    """``images`` (one image of any accepted kind, or a list of them) → ``(list of RGB arrays, was_single)``."""
    single = is_image(images)
    if not single and not isinstance(images, (list, tuple)) and not hasattr(images, "__iter__"):
        raise InvalidImageError(f"images must be {_ACCEPTED}, or a list of them; got {type(images).__name__} {images!r:.60}")
    items = [images] if single else list(images)
    return [to_rgb(item, what="image" if single else f"image {i}") for i, item in enumerate(items)], single
