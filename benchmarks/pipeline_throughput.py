"""Throughput of lmkzoo's tf.data training pipeline (images/s), PIPNet preset at 256x256 on the LFW data.

    python benchmarks/pipeline_throughput.py                       # builds landmark_folder/lfw_teacher68 if needed
    python benchmarks/pipeline_throughput.py --batches 100 --augment none

What is timed: reading the TFDS records, JPEG decode, the crop + augmentation warp (one affine), the photometric
augmentations, normalisation, PIPNet target encoding, batching, prefetch: everything ``make_dataset(...,
training=True)`` does, as ``keras.Model.fit`` would consume it (no model). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _shared_lfw() -> Path | None:
    from lmkzoo.testing.lfw import find_shared_data  # $LMKZOO_SHARED_DATA, else ../shared/data beside the checkout

    shared = find_shared_data()
    return shared / "lfw_faces" if shared else None


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.path.expanduser("~/.cache/lmkzoo/bench_tfds"))
    p.add_argument("--manual-dir", default=None, help="shared/data/lfw_faces (found automatically if omitted)")
    p.add_argument("--model", default="pipnet_r18.300w", help="zoo model giving crop, input size, codec settings")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--augment", default="pipnet")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batches", type=int, default=60, help="timed batches")
    p.add_argument("--warmup", type=int, default=8, help="untimed batches first (tracing, buffer fill)")
    args = p.parse_args(argv)

    import tensorflow as tf
    import tensorflow_datasets as tfds

    import datasets_tfds  # noqa: F401
    from lmkzoo.codecs.pipnet_codec import PIPNetCodec, packaged_meanface
    from lmkzoo.data.pipeline import make_dataset
    from lmkzoo.registry import get_spec

    manual = Path(args.manual_dir) if args.manual_dir else _shared_lfw()
    builder = tfds.builder("landmark_folder/lfw_teacher68", data_dir=args.data_dir)
    build_s = 0.0
    if not builder.is_prepared():
        if manual is None:
            raise SystemExit("LFW data not found: pass --manual-dir PATH/lfw_faces, or set LMKZOO_SHARED_DATA to the "
                             "shared data folder (or put it at ../shared/data beside the checkout)")
        t = time.perf_counter()
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
        build_s = time.perf_counter() - t
    spec = get_spec(args.model)
    size = (args.size, args.size)
    codec = PIPNetCodec.from_meanface(packaged_meanface("pipnet_300w"), int(spec.builder.get("num_neighbors", 10)), size,
                                      int(spec.builder.get("net_stride", 32)))
    source = builder.as_dataset(split="train", shuffle_files=True)
    ds = make_dataset(source, crop=spec.crop, input_size=size, scheme="ibug68", mean=spec.mean, std=spec.std,
                      codec=codec, training=True, batch_size=args.batch_size, augment=None if args.augment == "none"
                      else args.augment, seed=0,
                      epochs=1 + (args.warmup + args.batches) * args.batch_size // builder.info.splits["train"].num_examples)
    it = iter(ds)
    for _ in range(args.warmup):
        next(it)
    t = time.perf_counter()
    for _ in range(args.batches):
        images, _ = next(it)
    _ = images.numpy()
    dt = time.perf_counter() - t
    result = {
        "images_per_s": round(args.batches * args.batch_size / dt, 1),
        "batch_size": args.batch_size, "input": f"{args.size}x{args.size}", "augment": args.augment,
        "crop": dict(spec.crop), "timed_batches": args.batches, "seconds": round(dt, 2),
        "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "tensorflow": tf.__version__,
        "dataset": "landmark_folder/lfw_teacher68 train", "num_train_examples": builder.info.splits["train"].num_examples,
        "tfds_build_s": round(build_s, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
