"""Self-training's pseudo-labels (:mod:`lmkzoo.training.self_training`): the unlabelled faces read from TFDS names or
datasets (each source's boxes moved by its ``box_adjust``), written once as image files, labelled through the serving
path (:func:`pseudo_label`) and stored as a TFDS-readable artefact: ``pseudo_labels.csv`` in ``landmark_folder``'s
``csv`` layout (absolute image paths, ``x0, y0, ...`` and the face box) with ``provenance.json`` (model, the weights
that labelled and their SHA-256, run folder, lmkzoo version, round, task), read back through the ``landmark_folder``
builder (:func:`load_pseudo_labels`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["PSEUDO_CSV", "PROVENANCE", "write_pseudo_labels", "pseudo_label_config", "load_pseudo_labels",
           "pseudo_label"]

PSEUDO_CSV = "pseudo_labels.csv"
PROVENANCE = "provenance.json"


# ---------------------------------------------------------------------------------------------- artefact
def write_pseudo_labels(folder, *, images, points, boxes, scheme: str, provenance: dict, scores=None) -> Path:
    """Write a pseudo-label artefact: ``folder/pseudo_labels.csv`` (``landmark_folder``'s ``csv`` layout:
    ``image`` (absolute path), ``x0, y0, ..., x{K-1}, y{K-1}`` in image pixels (lmkzoo's corner convention),
    ``box_x0 .. box_y1`` (the face box the crop came from) and ``mean_score``) and ``folder/provenance.json``.
    Returns the folder."""
    import shutil

    from lmkzoo import schemes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "tfds", ignore_errors=True)  # a prepared copy of older labels would be read otherwise
    k = schemes.get(scheme).num_points
    pts = np.asarray(points, np.float64).reshape(len(images), k, 2)
    bx = np.asarray(boxes, np.float64).reshape(len(images), 4)
    sc = np.full(len(images), np.nan) if scores is None else np.asarray(scores, np.float64).reshape(len(images), -1).mean(1)
    tmp = folder / f".{PSEUDO_CSV}.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", *[f"{a}{i}" for i in range(k) for a in "xy"], "box_x0", "box_y0", "box_x1", "box_y1",
                    "mean_score"])
        for img, p, b, s in zip(images, pts, bx, sc):
            w.writerow([str(Path(img).resolve()), *[f"{v:.3f}" for v in p.reshape(-1)], *[f"{v:.3f}" for v in b],
                        f"{s:.5f}"])
    tmp.replace(folder / PSEUDO_CSV)
    meta = {**provenance, "scheme": scheme, "num_faces": len(images), "csv": PSEUDO_CSV,
            "tfds": {"builder": "landmark_folder", "config": dataclasses.asdict(pseudo_label_config(scheme))}}
    (folder / PROVENANCE).write_text(json.dumps(meta, indent=2, default=str))
    return folder


def pseudo_label_config(scheme: str, name: str = "pseudo_labels"):
    """The :class:`LandmarkFolderConfig` that reads an artefact folder (its manual dir)."""
    from datasets_tfds.landmark_folder.landmark_folder_dataset_builder import LandmarkFolderConfig

    return LandmarkFolderConfig(name=name, description="lmkzoo self-training pseudo-labels (see provenance.json)",
                                scheme=scheme, format="csv", splits={"train": PSEUDO_CSV})


def load_pseudo_labels(folder, *, task=None, data_dir=None):
    """An artefact folder as a ``tf.data.Dataset`` of examples, through the ``landmark_folder`` builder.

    Returns ``(dataset, provenance)``. The TFDS files go to ``data_dir`` (default ``folder/tfds``). With
    ``task`` (a type name or id) each example carries it as ``task`` (int32) for ``codec.encode``."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    import datasets_tfds  # noqa: F401  (registers the builders)
    from lmkzoo.losses.pipnet_stc_loss import STC_TASKS

    folder = Path(folder)
    meta_file = folder / PROVENANCE
    if not meta_file.exists():
        raise InvalidArgumentError(f"{folder} is not a pseudo-label artefact: {PROVENANCE} is missing")
    meta = json.loads(meta_file.read_text())
    b = tfds.builder("landmark_folder", config=pseudo_label_config(meta["scheme"]),
                     data_dir=str(data_dir or folder / "tfds"))
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(folder)))
    ds = b.as_dataset(split="train", shuffle_files=False)
    if task is not None:
        tid = STC_TASKS[task] if isinstance(task, str) else int(task)
        ds = ds.map(lambda ex: {**ex, "task": tf.constant(tid, tf.int32)})
    return ds, meta


# ---------------------------------------------------------------------------------------------- unlabelled data
def _split_name(name: str, default: str):
    """``"tfds_name[/config][:split]"`` → ``(name, split)``."""
    if ":" in name:
        name, split = name.rsplit(":", 1)
        return name, split
    return name, default


def _unlabeled_stream(unlabeled, *, split="train", data_dir=None):
    """``(dataset of {"image", "raw", "bbox", "has_box"}, description)``. TFDS sources keep the encoded bytes
    (``raw``), so the image files are written exactly; other datasets have ``raw`` empty (encoded as PNG). A list of
    :func:`resolve_unlabeled` sources is read one after the other, each box moved by its source's ``box_adjust``."""
    import tensorflow as tf

    if isinstance(unlabeled, list):
        streams, descs = [], []
        for src in unlabeled:
            ds, desc = _unlabeled_stream(src["source"], split=split, data_dir=data_dir)
            if src.get("box_adjust"):
                (sx, sy), (dx, dy) = src["box_adjust"]["scale"], src["box_adjust"]["shift"]
                ds = ds.map(lambda ex, sx=sx, sy=sy, dx=dx, dy=dy: {**ex, "bbox": _adjust_box(ex["bbox"], sx, sy, dx, dy)})
                desc += f" (box scale {sx:.4g}x{sy:.4g}, shift {dx:.4g},{dy:.4g})"
            streams.append(ds)
            descs.append(desc)
        stream = streams[0]
        for ds in streams[1:]:
            stream = stream.concatenate(ds)
        return stream, " + ".join(descs)

    if isinstance(unlabeled, str):
        import tensorflow_datasets as tfds

        import datasets_tfds  # noqa: F401
        from lmkzoo.data.pipeline import check_split, prepare_builder

        name, split = _split_name(unlabeled, split)
        b = prepare_builder(name, data_dir=data_dir)
        ds = b.as_dataset(split=check_split(b, split), shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
        desc = f"{name}:{split}"

        def fn(ex):
            out = {"image": tf.io.decode_image(ex["image"], channels=3, expand_animations=False), "raw": ex["image"]}
            out["bbox"] = tf.cast(ex["bbox"], tf.float32) if "bbox" in ex else tf.zeros([4], tf.float32)
            out["has_box"] = tf.constant("bbox" in ex)
            return out

        return ds.map(fn), desc
    if not isinstance(unlabeled, tf.data.Dataset):
        raise InvalidArgumentError(f"unlabeled must be a TFDS name or a tf.data.Dataset; got {type(unlabeled).__name__}")
    spec = unlabeled.element_spec
    if isinstance(spec, dict):
        if "image" not in spec:
            raise InvalidArgumentError(f"unlabeled examples need an 'image' key; got keys {sorted(spec)}")
        has_box = "bbox" in spec
        ds = unlabeled.map(lambda ex: {"image": ex["image"], "raw": tf.constant(b""),
                                       "bbox": tf.cast(ex["bbox"], tf.float32) if has_box else tf.zeros([4], tf.float32),
                                       "has_box": tf.constant(has_box)})
    else:
        ds = unlabeled.map(lambda img: {"image": img, "raw": tf.constant(b""), "bbox": tf.zeros([4], tf.float32),
                                        "has_box": tf.constant(False)})
    return ds, "<dataset>"


def _adjust_box(box, sx, sy, dx, dy):
    """:func:`lmkzoo.geometry.enlarge_box` in TensorFlow for one ``(x0, y0, x1, y1)`` box."""
    import tensorflow as tf

    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2 + dx * w, (box[1] + box[3]) / 2 + dy * h
    return tf.stack([cx - sx * w / 2, cy - sy * h / 2, cx + sx * w / 2, cy + sy * h / 2])


def _image_suffix(raw: bytes) -> str:
    if raw[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if raw[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if raw[:2] == b"BM":
        return ".bmp"
    return ""


def _materialise(stream, folder: Path, *, max_images=None):
    """Write the unlabelled images once as files (``folder/000000.jpg`` ...; encoded bytes kept as they are,
    decoded-only images as PNG) with ``index.json`` (file, face box): the pseudo-label CSVs point at them."""
    import tensorflow as tf

    index_file = folder / "index.json"
    if index_file.exists():
        index = json.loads(index_file.read_text())
        if max_images is None or index.get("max_images") == max_images:
            return index["items"]
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i, ex in enumerate(stream.as_numpy_iterator()):
        if max_images is not None and i >= int(max_images):
            break
        raw = bytes(ex["raw"])
        suffix = _image_suffix(raw)
        if not suffix:
            raw, suffix = tf.io.encode_png(ex["image"]).numpy(), ".png"
        path = folder / f"{i:06d}{suffix}"
        path.write_bytes(raw)
        h, w = ex["image"].shape[:2]
        box = ex["bbox"].tolist() if bool(ex["has_box"]) else [0.0, 0.0, float(w), float(h)]
        items.append({"file": str(path.resolve()), "bbox": [float(v) for v in box]})
    if not items:
        raise InvalidArgumentError("the unlabeled source holds no images")
    index_file.write_text(json.dumps({"count": len(items), "max_images": max_images, "items": items}))
    return items


def pseudo_label(network, spec, items, *, batch_size: int = 32, box_adjust=None):
    """Landmarks of every unlabelled face through the serving path: ``Landmarker(spec, network).predict`` with the
    face box (optionally ``box_adjust``-ed: ``{"scale": s, "shift": [dx, dy]}`` of the box) under the model's crop.
    Returns ``(points (N, K, 2) image pixels, scores (N, K), boxes (N, 4))``."""
    from lmkzoo import crops
    from lmkzoo.image_io import read_image
    from lmkzoo.inference.landmarker import Landmarker

    if spec.crop.get("policy", "box") != "box":
        raise InvalidArgumentError(f"self-training labels unlabeled faces by their boxes; {spec.name} crops by "
                                   f"{spec.crop.get('policy')!r}")
    lm = Landmarker(spec, network, batch_size=batch_size)
    pts, scores, boxes = [], [], []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        imgs = [read_image(it["file"]) for it in chunk]
        bx = [np.asarray(it["bbox"], np.float64) for it in chunk]
        if box_adjust:
            bx = [crops.crop_box(b, box_adjust) for b in bx]
        res = lm.predict(imgs, boxes=[[b] for b in bx], detector=None)
        for faces, b in zip(res, bx):
            pts.append(faces[0].points)
            scores.append(faces[0].scores)
            boxes.append(b)
    return np.stack(pts), np.stack(scores), np.stack(boxes)
