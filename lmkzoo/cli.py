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
    "info": "lmkzoo info heatmap_mnv2_025.sssd --flops",
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
    report = flops_report(spec) if args.flops else None
    if args.json:
        d = spec.to_dict()
        if report is not None:
            d["compute"] = {"gmacs": report.gmacs, "gflops": report.gflops, "params": report.params,
                            "trainable_params": report.trainable_params, "size_mib_float32": report.size_mb}
        print(json.dumps(d, indent=2, default=str))
        return 0
    print(format_model_card(spec))
    if report is not None:
        print(format_compute(spec, report))
    return 0


def flops_report(spec):
    """:class:`lmkzoo.flops.MacsReport` of a randomly initialised network for ``spec``."""
    from lmkzoo.flops import count_macs
    from lmkzoo.tasks.loader import build_network

    return count_macs(build_network(spec))


def format_compute(spec, report) -> str:
    """Compute lines of a model card: MACs (the unit papers print as "GFLOPs"), parameters, float32 size."""
    w, h = spec.input_size
    lines = [
        f"  compute at {w}x{h}: {report.gmacs:.3f} GMACs (multiply-adds; {report.gflops:.3f} GFLOPs = 2 x MACs; "
        "BatchNorm, biases and activations not counted)",
        f"  size: {report.params:,} parameters ({report.trainable_params:,} trainable), {report.size_mb:.2f} MiB as float32",
    ]
    pm = spec.paper_metrics
    if "gflops" in pm or "size_mb" in pm:
        paper = []
        if "gflops" in pm:
            paper.append(f"{pm['gflops']} GFLOPS (MACs)")
        if "size_mb" in pm:
            paper.append(f"{pm['size_mb']} MB")
        lines.append(f"  paper: {', '.join(paper)}")
    return "\n".join(lines)


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
    sp.add_argument("--flops", action="store_true",
                    help="build the network (random weights) and print its multiply-adds (GMACs), parameters and float32 size")
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
