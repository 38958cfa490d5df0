"""``lmkzoo list`` and ``info``: the zoo's entries and their model cards."""

from __future__ import annotations

import json

from lmkzoo.cli.model_card import flops_report, format_compute, format_model_card

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


def register(add) -> None:
    """Register ``list`` and ``info`` through ``add(name, help, handler)``."""
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
