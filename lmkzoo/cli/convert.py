"""``lmkzoo convert``: an official checkpoint into lmkzoo weights, with a numeric check."""

from __future__ import annotations

import json

from lmkzoo.cli._args import _count

EXAMPLES = {
    "convert": "lmkzoo convert pipnet-torch epoch59.pth --scheme wflw98 --meanface meanface.txt --out pipnet_r18_wflw",
}


def _cmd_convert(args) -> int:
    from lmkzoo.convert.pipnet_torch import convert_checkpoint

    _, report = convert_checkpoint(args.checkpoint, scheme=args.scheme, meanface=args.meanface, model=args.model,
                                   out=args.out, input_size=args.input_size, check=not args.no_check)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k}: {v}")
    return 0


def register(add) -> None:
    """Register ``convert`` through ``add(name, help, handler)``."""
    sp = add("convert", "convert an official checkpoint into lmkzoo weights (.weights.h5 + .keras), with a numeric check", _cmd_convert)
    sp.add_argument("kind", choices=["pipnet-torch"], help="checkpoint kind")
    sp.add_argument("checkpoint", help="PyTorch state_dict (.pth), e.g. PIPNet's snapshots/<data>/<exp>/epoch59.pth")
    sp.add_argument("--scheme", required=True, help="landmark scheme of the checkpoint (wflw98, ibug68, cofw29, aflw19, jd106)")
    sp.add_argument("--meanface", help="PIPNet meanface.txt the checkpoint was trained with (default: the scheme's packaged one)")
    sp.add_argument("--model", help="zoo arch to build (default: inferred from the checkpoint)")
    sp.add_argument("--out", help="output path stem (writes STEM.weights.h5 and STEM.keras)")
    sp.add_argument("--input-size", type=_count, default=256)
    sp.add_argument("--no-check", action="store_true", help="skip the PyTorch-vs-Keras numeric check")
    sp.add_argument("--json", action="store_true")
