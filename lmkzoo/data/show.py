"""``lmkzoo data show``: a grid of pipeline outputs (crop + augmentation) with their points, to check by eye.

The examples go through exactly the training map (:func:`lmkzoo.data.pipeline.make_example_fn`), so what the
grid shows is what a model is trained on: the crop policy, the augmentation preset, and the points after the
same single affine (and flip permutation). Points are drawn by :func:`lmkzoo.visualize.draw_landmarks`:
image-left points red, image-right blue, midline green, the scheme skeleton underneath.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["load_builder", "show_examples", "parse_augment", "write_png"]


def parse_augment(value):
    """``none`` / a preset name / a JSON dict (``'{"flip": {"p": 1.0}}'``) → what ``make_example_fn`` takes."""
    if value is None or value == "none":
        return None
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise InvalidArgumentError(f"--augment is not valid JSON ({e}): {value!r}") from None
    return value


def load_builder(name: str, *, data_dir=None, manual_dir=None):
    """The TFDS builder ``name`` (``"ibug_300w/split1"``), prepared from ``manual_dir`` if it is not yet built
    (:func:`lmkzoo.data.pipeline.prepare_builder`)."""
    from lmkzoo.data.pipeline import prepare_builder

    return prepare_builder(name, data_dir=data_dir, manual_dir=manual_dir)


def show_examples(name: str, *, split: str = "train", n: int = 16, data_dir=None, manual_dir=None,
                  crop=None, input_size=(256, 256), augment="pipnet", seed: int = 0, skeleton: bool = True,
                  radius=None, cols=None) -> np.ndarray:
    """The grid image (uint8 RGB) of ``n`` pipeline outputs of ``name``'s ``split``."""
    import tensorflow as tf

    from lmkzoo.data.pipeline import make_example_fn
    from lmkzoo.visualize import draw_landmarks, make_grid

    if n < 1:
        raise InvalidArgumentError(f"-n must be at least 1; got {n}")
    builder = load_builder(name, data_dir=data_dir, manual_dir=manual_dir)
    from lmkzoo.data.pipeline import check_split

    check_split(builder, split)
    scheme = builder.info.metadata.get("scheme") if builder.info.metadata else None
    labeled = "landmarks" in builder.info.features
    if labeled and scheme is None:
        raise InvalidArgumentError(f"dataset {name!r} does not name its landmark scheme in its metadata")
    crop = dict(crop or {"policy": "box", "scale": 1.2})
    fn = make_example_fn(crop=crop, input_size=input_size, scheme=scheme or "five_point", augment=augment,
                         training=augment is not None)
    keep = ("image", "landmarks", "visible", "bbox", "five_points")
    ds = builder.as_dataset(split=split, shuffle_files=False).repeat().take(n).enumerate()
    base = tf.constant([int(seed), 0], tf.int64)
    ds = ds.map(lambda i, ex: fn({k: ex[k] for k in keep if k in ex}, tf.random.experimental.stateless_fold_in(base, i)))
    tiles = []
    for out in ds.as_numpy_iterator():
        img = out["images"]
        if labeled:
            img = draw_landmarks(img, out["landmarks"], scheme, visible=out["visible"] > 0.5, skeleton=skeleton,
                                 radius=radius)
        tiles.append(img)
    return make_grid(tiles, cols)


def write_png(path, image) -> Path:
    """Write an RGB image as PNG atomically (temporary file in the same folder, then ``os.replace``)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(np.asarray(image)[..., ::-1]))
    if not ok:
        raise InvalidArgumentError(f"could not encode the grid as PNG for {path}")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
