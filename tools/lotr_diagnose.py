"""Why a LOTR model predicts what it predicts: the checks behind docs/training_300w.md's LOTR section.

    python tools/lotr_diagnose.py lotr_m.300w --weights RUN/final.weights.h5 --data-dir TFDS_DIR
    python tools/lotr_diagnose.py lotr_m.300w --builder '{"head_dropout": 0.1}' --weights OLD_RUN/ckpt/epoch021.weights.h5 ...

On the faces of ``--split`` (default the selection slice ``train[90%:]``, crops of the model's input contract), it
prints:

* the NME % of the network and of the mean shape (the mean crop points of ``--mean-split``, ``train[:90%]``): a
  model no better than the mean shape has not learned to look at the face;
* how much the predicted points vary across faces against how much the annotations do (crop pixels);
* NME and the mean offset of the points with the network's dropouts and BatchNorm in each mode (inference, every
  dropout on, only the dropout before the head, only the Transformer's, BatchNorm on batch statistics): a dropout
  the network leans on shows up as an offset that only inference has;
* for each stage (tokens, encoder and decoder layers, head), the share of its output's spread that varies across
  images: where the image's information fades.

``--json FILE`` writes the same numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

#: the LOTRNetwork layers whose outputs are compared across images (those the network has)
STAGES = ("tokens", "encoder0", "encoder1", "encoder2", "decoder0", "decoder1", "decoder2", "decoder_norm", "head_out")


@contextlib.contextmanager
def network_mode(network, dropouts: str = "none", batch_stats: bool = False):
    """Run ``network(x, training=True)`` inside with only some dropouts on: ``dropouts`` is ``"none"``, ``"all"``,
    ``"head"`` (the ``head_dropout`` layer) or ``"transformer"`` (every other); BatchNorm uses batch statistics only
    with ``batch_stats``. Rates, ``trainable`` flags and BatchNorm's moving statistics are restored on exit."""
    import keras

    if dropouts not in ("none", "all", "head", "transformer"):
        raise ValueError(f"dropouts must be none, all, head or transformer; got {dropouts!r}")
    layers = list(network._flatten_layers())
    drops = [layer for layer in layers if isinstance(layer, keras.layers.Dropout)]
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [(layer, layer.rate) for layer in drops], [(layer, layer.trainable) for layer in norms]
    # a training-mode call moves BatchNorm's moving statistics: they are put back too
    statistics = [(v, v.numpy()) for v in network.non_trainable_variables]
    try:
        for layer in drops:
            head = layer.name == "head_dropout"
            on = dropouts == "all" or (dropouts == "head" and head) or (dropouts == "transformer" and not head)
            layer.rate = layer.rate if on else 0.0
        for layer in norms:
            layer.trainable = batch_stats
        yield
    finally:
        for layer, rate in saved[0]:
            layer.rate = rate
        for layer, flag in saved[1]:
            layer.trainable = flag
        for v, value in statistics:
            v.assign(value)


def _crops(dataset):
    images, points = [], []
    for x, info in dataset:
        images.append(x.numpy())
        points.append(info["landmarks"].numpy())
    return np.concatenate(images), np.concatenate(points).astype(np.float64)


def diagnose(network, dataset, mean_shape, *, scheme: str, batch_size: int = 32, seed: int = 0) -> dict:
    """The numbers of the module docstring for ``network`` on an evaluation ``dataset`` (``make_dataset(...,
    training=False)``), with ``mean_shape`` ``(K, 2)`` in crop pixels."""
    import keras

    from lmkzoo import metrics

    images, gt = _crops(dataset)

    def batched(fn):
        """``fn`` over ``images`` in batches; its list of outputs, each concatenated over the batches."""
        parts = [fn(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        return [np.concatenate([np.asarray(p[k], dtype=np.float64) for p in parts]) for k in range(len(parts[0]))]

    def predict(training):
        keras.utils.set_random_seed(seed)
        return batched(lambda x: [network.codec(network(x, training=training))["landmarks"]])[0]

    def summary(pred):
        return {"nme": 100 * float(np.mean(metrics.nme(pred, gt, scheme=scheme))),
                "offset_px": [round(float(v), 3) for v in (pred - gt).mean(axis=(0, 1))]}

    pred = predict(False)
    report = {
        "faces": len(gt),
        "nme": summary(pred)["nme"],
        "mean_shape_nme": summary(np.broadcast_to(mean_shape, gt.shape))["nme"],
        "variation_across_faces_px": {"predicted": float(pred.std(axis=0).mean()),
                                      "annotated": float(gt.std(axis=0).mean())},
        "modes": {"inference": summary(pred)},
    }
    for name, kw in {"every dropout": {"dropouts": "all"}, "dropout before the head only": {"dropouts": "head"},
                     "Transformer dropouts only": {"dropouts": "transformer"},
                     "BatchNorm batch statistics, no dropout": {"batch_stats": True}}.items():
        with network_mode(network, **kw):
            report["modes"][name] = summary(predict(True))
    names = [n for n in STAGES if any(layer.name == n for layer in network.layers)]
    probe = keras.Model(network.input, [network.get_layer(n).output for n in names])
    outs = batched(lambda x: probe(x, training=False))
    report["across_image_share"] = {n: float(o.std(axis=0).mean() / max(o.std(), 1e-12)) for n, o in zip(names, outs)}
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="a LOTR zoo name (e.g. lotr_m.300w)")
    ap.add_argument("--weights", required=True, help="a .weights.h5 of that model (a run's final or ckpt file)")
    ap.add_argument("--builder", default="{}",
                    help='builder overrides as JSON, for weights trained under an older tag (e.g. \'{"head_dropout": 0.1}\')')
    ap.add_argument("--data", default="ibug_300w")
    ap.add_argument("--data-dir", help="TFDS data dir")
    ap.add_argument("--split", default="train[90%:]")
    ap.add_argument("--mean-split", default="train[:90%]", help="the split whose mean crop points are the mean shape")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    from lmkzoo.data.pipeline import make_dataset
    from lmkzoo.errors import LmkzooError
    from lmkzoo.families.base import build_network
    from lmkzoo.registry import get_spec

    try:
        spec = get_spec(args.model)
        if spec.family != "lotr":
            ap.exit(2, f"error: {args.model} is a {spec.family} model; this tool reads LOTR networks\n")
        if not Path(args.weights).is_file():
            ap.exit(2, f"error: no weights file {args.weights}\n")
        try:
            overrides = json.loads(args.builder)
        except json.JSONDecodeError as e:
            ap.exit(2, f"error: --builder is not JSON: {e}\n")
        network = build_network(spec, **overrides)
        network.load_weights(args.weights)
        common = dict(crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean, std=spec.std,
                      data_dir=args.data_dir, batch_size=64)
        mean_shape = _crops(make_dataset(args.data, split=args.mean_split, **common))[1].mean(axis=0)
        report = diagnose(network, make_dataset(args.data, split=args.split, **common), mean_shape,
                          scheme=spec.scheme)
    except LmkzooError as e:
        ap.exit(2, f"error: {e}\n")
    print(f"{report['faces']} faces of {args.data} {args.split}: NME {report['nme']:.2f} %, the mean shape's "
          f"{report['mean_shape_nme']:.2f} %")
    v = report["variation_across_faces_px"]
    print(f"variation of the points across faces: predicted {v['predicted']:.2f} px, annotated {v['annotated']:.2f} px")
    print("| network mode | NME % | mean offset (crop px) |\n|---|---|---|")
    for name, m in report["modes"].items():
        print(f"| {name} | {m['nme']:.2f} | ({m['offset_px'][0]:.1f}, {m['offset_px'][1]:.1f}) |")
    print("share of each stage's spread that varies across images:")
    for name, share in report["across_image_share"].items():
        print(f"  {name:14s} {share:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
