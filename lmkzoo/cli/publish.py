"""``lmkzoo publish``: a trained model's weights file and its zoo.yaml entry."""

from __future__ import annotations

import argparse
import sys

EXAMPLES = {
    "publish": "lmkzoo publish runs/pipnet_r18 --license Apache-2.0 --data-license 'CC BY-NC 4.0'",
}


def _parse_metric(text: str):
    key, sep, value = text.partition("=")
    try:
        if not sep or not key:
            raise ValueError
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a metric is KEY=NUMBER, e.g. wflw_test_nme=4.6; got {text!r}") from None


def _cmd_publish(args) -> int:
    from lmkzoo import hub
    from lmkzoo.training import publish

    res = publish.publish(
        args.source, name=args.name, out_dir=args.out, url_template=args.url_template or hub.DEFAULT_URL_TEMPLATE, license=args.license,
        training_data=args.training_data, data_license=args.data_license, made_by=args.made_by,
        metrics=dict(args.metric) if args.metric else None, mirrors=args.mirror or (),
    )
    print(f"wrote {res.path} ({res.size} bytes, sha256 {res.sha256}); upload it to {res.url}", file=sys.stderr)
    print(res.to_yaml(), end="")
    return 0


def register(add) -> None:
    """Register ``publish`` through ``add(name, help, handler)``."""
    sp = add("publish", "write the .weights.h5 file of a model trained with lmkzoo and print its zoo.yaml entry",
             _cmd_publish)
    sp.add_argument("source", metavar="MODEL_DIR_OR_FILE",
                    help="a training run folder (final.keras / final.weights.h5), a .keras or a .weights.h5 file")
    sp.add_argument("--name", help="zoo arch.tag (default: from the run's config.json or the .keras file)")
    sp.add_argument("--out", metavar="DIR", help="folder for the weights file (default: beside the source)")
    sp.add_argument("--url-template", default=None,
                    help="upload URL; {version} {filename} {name} {arch} {tag} {sha256} {sha8} are filled in")
    sp.add_argument("--mirror", action="append", metavar="URL", help="a mirror URL for the entry (repeatable)")
    sp.add_argument("--license", required=True, help="licence of the weights, e.g. Apache-2.0")
    sp.add_argument("--data-license", required=True, help="licence of the training data")
    sp.add_argument("--training-data", help="what it was trained on (default: the run's data)")
    sp.add_argument("--made-by", help="how it was made (default: 'trained by lmkzoo ... with the NAME recipe ...')")
    sp.add_argument("--metric", action="append", type=_parse_metric, metavar="KEY=VALUE",
                    help="a measured metric (repeatable; default: the run's last validation metrics)")
