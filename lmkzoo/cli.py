"""The ``lmkzoo`` command line.

Each subcommand lives in a small ``_cmd_*`` function; user errors (bad names, missing files) print one
line to stderr and exit with status 2, never a traceback. Heavy imports happen inside the commands, so
``lmkzoo list`` and ``lmkzoo --help`` do not import TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import sys

from lmkzoo.errors import LmkzooError

EXAMPLES = {
    "list": "lmkzoo list 'pipnet*' --pretrained",
    "info": "lmkzoo info pipnet_r18.wflw",
    "data": "lmkzoo data show ibug_300w/split1 --split train -n 16 --out grid.png --manual-dir ~/data/300w",
}


def _fmt_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _cmd_list(args) -> int:
    from lmkzoo.registry import default_model_name, get_spec, list_models

    names = list_models(args.pattern, pretrained=args.pretrained, family=args.family)
    if args.json:
        print(json.dumps([get_spec(n).to_dict() for n in names], indent=2, default=str))
        return 0
    if not names:
        print(f"no zoo model matches {args.pattern!r}" + (" with weights" if args.pretrained else ""))
        return 0
    default = default_model_name()
    rows = []
    for n in names:
        s = get_spec(n)
        w = "embedded" if (s.weights and s.weights.file) else ("yes" if s.weights else "-")
        size = "x".join(str(v) for v in s.input_size)
        rows.append([n + (" (default)" if n == default else ""), s.family, s.scheme, size, w])
    print(_fmt_table(rows, ["model", "family", "scheme", "input", "weights"]))
    return 0


def _cmd_info(args) -> int:
    from lmkzoo.registry import get_spec

    spec = get_spec(args.name)
    if args.json:
        print(json.dumps(spec.to_dict(), indent=2, default=str))
        return 0
    print(format_model_card(spec))
    return 0


def _cmd_data_show(args) -> int:
    from lmkzoo.data.show import parse_augment, show_examples, write_png

    if args.model:
        from lmkzoo.registry import get_spec

        spec = get_spec(args.model)
        crop, size = dict(spec.crop), tuple(spec.input_size)
        augment = spec.recipe.get("augment", "none") if args.augment is None else args.augment
    else:
        crop = {"policy": args.crop, "scale": args.crop_scale}
        size = (args.size, args.size)
        augment = "pipnet" if args.augment is None else args.augment
    grid = show_examples(args.name, split=args.split, n=args.n, data_dir=args.data_dir, manual_dir=args.manual_dir,
                         crop=crop, input_size=size, augment=parse_augment(augment), seed=args.seed,
                         skeleton=not args.no_skeleton, radius=args.radius, cols=args.cols)
    path = write_png(args.out, grid)
    print(f"wrote {path} ({args.n} examples of {args.name} [{args.split}], crop {crop}, augment {augment})")
    return 0


def format_model_card(spec) -> str:
    """Human-readable model card of a :class:`~lmkzoo.registry.ModelSpec`."""
    lines = [f"{spec.name}  ({spec.family}, scheme {spec.scheme})"]
    if spec.description:
        lines.append(f"  {spec.description}")
    lines.append(f"  input: {spec.input_size[0]}x{spec.input_size[1]} RGB, mean {list(spec.mean)}, std {list(spec.std)}")
    lines.append(f"  crop: {dict(spec.crop)}")
    lines.append(f"  builder: {dict(spec.builder)}")
    if spec.recipe:
        lines.append(f"  recipe: {dict(spec.recipe)}")
    if spec.paper:
        lines.append(f"  paper: {spec.paper.get('title', '')} {spec.paper.get('url', '')}".rstrip())
    if spec.paper_metrics:
        lines.append(f"  paper metrics: {dict(spec.paper_metrics)}")
    w = spec.weights
    if w is None:
        lines.append("  weights: none published (lmkzoo.load(name, weights=None) builds it randomly initialised)")
    else:
        lines.append(f"  weights: {w.file or w.url}")
        lines.append(f"    sha256 {w.sha256}" + (f", {w.size} bytes" if w.size else "") + f", format {w.format}")
        lines.append(f"    licence: {w.license}")
        lines.append(f"    training data: {w.training_data}" + (f" (licence: {w.data_license})" if w.data_license else ""))
        lines.append(f"    made by: {w.made_by}")
        if w.metrics:
            lines.append(f"    measured: {dict(w.metrics)}")
    if spec.notes:
        lines.append(f"  notes: {spec.notes}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lmkzoo",
        description="Face-landmark model zoo for Keras 3 / TensorFlow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(f"  {v}" for v in EXAMPLES.values()),
    )
    from lmkzoo import __version__

    p.add_argument("--version", action="version", version=f"lmkzoo {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_, func):
        sp = sub.add_parser(
            name, help=help_, description=help_, epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.set_defaults(func=func)
        return sp

    sp = add("list", "list zoo models (fnmatch pattern over names and tags)", _cmd_list)
    sp.add_argument("pattern", nargs="?", default="*")
    sp.add_argument("--pretrained", action="store_true", help="only models with weights")
    sp.add_argument("--family", help="only this family (pipnet, heatmap, lotr, laplacekl, uglli)")
    sp.add_argument("--json", action="store_true", help="print the full specs as JSON")

    sp = add("info", "show a model's card: input contract, recipe, paper numbers, weights and licence", _cmd_info)
    sp.add_argument("name", help="arch or arch.tag, e.g. pipnet_r18 or pipnet_r18.300w")
    sp.add_argument("--json", action="store_true")

    sp = add("data", "inspect datasets through the training pipeline", None)
    sp.set_defaults(func=lambda _args, _sp=sp: _sp.print_help() or 0)
    data_sub = sp.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    show = data_sub.add_parser(
        "show", help="draw pipeline examples (crop + augmentation) with their points into a PNG grid",
        description="Draw n examples of a TFDS dataset as the training pipeline produces them (crop policy, "
        "augmentation, flips with the scheme permutation), points coloured by side (image-left red, right blue, "
        "midline green) over the scheme skeleton.",
        epilog=f"example:\n  {EXAMPLES['data']}", formatter_class=argparse.RawDescriptionHelpFormatter)
    show.set_defaults(func=_cmd_data_show)
    show.add_argument("name", help="TFDS name with config, e.g. ibug_300w/split1, wflw, landmark_folder/dlib_faces68")
    show.add_argument("--split", default="train")
    show.add_argument("-n", type=int, default=16, help="number of examples (default 16)")
    show.add_argument("--out", default="grid.png", help="PNG file to write (default grid.png)")
    show.add_argument("--data-dir", help="TFDS data dir (default ~/tensorflow_datasets)")
    show.add_argument("--manual-dir", help="original files, to build the dataset if it is not prepared yet")
    show.add_argument("--model", help="take crop, input size and augmentation from this zoo model (e.g. pipnet_r18.300w)")
    show.add_argument("--crop", default="box", choices=["box", "five_point", "five_point_hull", "none"])
    show.add_argument("--crop-scale", type=float, default=1.2, help="box enlargement / hull factor (default 1.2)")
    show.add_argument("--size", type=int, default=256, help="crop size in pixels (default 256)")
    show.add_argument("--augment", help="preset name (pipnet, earp, uglli, ...), 'none', or a JSON dict; default: the "
                      "model's recipe, else pipnet")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--cols", type=int, help="grid columns (default about square)")
    show.add_argument("--radius", type=float, help="point radius in pixels")
    show.add_argument("--no-skeleton", action="store_true", help="do not draw the scheme's polylines")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except LmkzooError as e:
        print(f"lmkzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"lmkzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
