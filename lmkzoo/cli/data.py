"""``lmkzoo data show``: dataset examples as the training pipeline produces them, drawn into a grid."""

from __future__ import annotations

import argparse

from lmkzoo.cli._args import _count, _count0, _positive

EXAMPLES = {
    "data": "lmkzoo data show ibug_300w/split1 --split train -n 16 --out grid.png --manual-dir ~/data/300w",
}


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


def register(add) -> None:
    """Register ``data`` (and its ``show`` subcommand) through ``add(name, help, handler)``."""
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
    show.add_argument("-n", type=_count, default=16, help="number of examples (default 16)")
    show.add_argument("--out", default="grid.png", help="PNG file to write (default grid.png)")
    show.add_argument("--data-dir", help="TFDS data dir (default ~/tensorflow_datasets)")
    show.add_argument("--manual-dir", help="original files, to build the dataset if it is not prepared yet")
    show.add_argument("--model", help="take crop, input size and augmentation from this zoo model (e.g. pipnet_r18.300w)")
    show.add_argument("--crop", default="box", choices=["box", "five_point", "five_point_hull", "none"])
    show.add_argument("--crop-scale", type=_positive, default=1.2, help="box enlargement / hull factor (default 1.2)")
    show.add_argument("--size", type=_count, default=256, help="crop size in pixels (default 256)")
    show.add_argument("--augment", help="preset name (pipnet, earp, uglli, ...), 'none', or a JSON dict; default: the "
                      "model's recipe, else pipnet")
    show.add_argument("--seed", type=_count0, default=0)
    show.add_argument("--cols", type=_count, help="grid columns (default about square)")
    show.add_argument("--radius", type=_positive, help="point radius in pixels")
    show.add_argument("--no-skeleton", action="store_true", help="do not draw the scheme's polylines")
