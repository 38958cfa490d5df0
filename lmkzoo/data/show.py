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
    """The TFDS builder ``name`` (``"ibug_300w/split1"``), prepared from ``manual_dir`` if it is not yet built."""
    import tensorflow_datasets as tfds

    import datasets_tfds  # noqa: F401  (registers the builders)

    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else str(data_dir))
    except Exception as e:  # tfds raises DatasetNotFoundError / ValueError for unknown names or configs
        raise InvalidArgumentError(f"unknown dataset {name!r} ({type(e).__name__}: {str(e).splitlines()[0]}); lmkzoo "
                                   f"builders: {list(datasets_tfds.BUILDERS)}") from None
    if not builder.is_prepared():
        if manual_dir is None:
            raise InvalidArgumentError(
                f"dataset {name!r} is not prepared in {builder.data_dir}; pass --manual-dir with the original files "
                "(see the builder's MANUAL_DOWNLOAD_INSTRUCTIONS) or --data-dir where it was built")
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


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
    if split not in builder.info.splits:
        raise InvalidArgumentError(f"dataset {name!r} has no split {split!r}; splits: {sorted(builder.info.splits)}")
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
