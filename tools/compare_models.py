"""Side-by-side comparison of shipped models from their model cards (e.g. LaplaceKL vs LaplaceKL+D, paper Table 2).

    python tools/compare_models.py laplacekl_rcn.300w_quarter laplacekl_rcn_d.300w_quarter \
        --out benchmarks/results/laplacekl_comparison.json        # the raw JSON; prints the Markdown table

Every number comes from the cards in zoo.yaml (``weights.metrics``, written once per model by tools/ship_model.py:
300-W Common with the annotation boxes and through the detector, the dlib faces, the selection slice, the
uncertainty numbers of models with covariances) and the entries' ``paper_metrics``; nothing is re-measured, so the
table cannot drift from the cards (tests/test_docs.py regenerates the JSON files in benchmarks/results that this tool
wrote and compares). Reads zoo.yaml only (no TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (card metric, column title, digits): the table's columns, in order; a column that no model has is left out
COLUMNS = (
    ("300w_common_nme", "Common NME %", 2),
    ("300w_common_fr_0.10", "FR@0.10 %", 2),
    ("300w_common_auc_0.08", "AUC@0.08", 4),
    ("300w_common_nme_detector", "Common NME %, detector", 2),
    ("faces68_dlib_nme_detector", "dlib faces NME %, detector", 2),
    ("300w_validation_nme_selection_slice", "selection slice NME %", 2),
    ("300w_common_uncertainty_pearson_per_image", "Pearson per face", 3),
    ("300w_common_uncertainty_coverage_2sigma", "inside 2σ", 3),
)


def compare(names) -> dict:
    """``{"models": {name: {"metrics", "paper_metrics", "made_by", "recipe", "notes"}}}`` from the cards."""
    from lmkzoo.registry import get_spec

    out = {}
    for name in names:
        spec = get_spec(name)
        if spec.weights is None:
            raise SystemExit(f"{spec.name} has no shipped weights (no card to compare)")
        w = spec.weights
        out[spec.name] = {"metrics": dict(w.metrics), "paper_metrics": dict(spec.paper_metrics), "made_by": w.made_by,
                          "recipe": dict(w.recipe or {}), "training_data": w.training_data, "notes": w.notes}
    return {"source": "zoo.yaml model cards (tools/compare_models.py)", "models": out}


def markdown(result: dict) -> str:
    models = result["models"]
    cols = [c for c in COLUMNS if any(c[0] in m["metrics"] for m in models.values())]
    rows = ["| model | " + " | ".join(title for _, title, _ in cols) + " | paper, Common NME % |",
            "|---|" + "---|" * (len(cols) + 1)]
    for name, m in models.items():
        cells = ["-" if m["metrics"].get(k) is None else f"{m['metrics'][k]:.{d}f}" for k, _, d in cols]
        paper = m["paper_metrics"].get("300w_common_nme")
        rows.append(f"| `{name}` | " + " | ".join(cells) + f" | {'-' if paper is None else paper} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", help="zoo arch.tag names with shipped weights")
    ap.add_argument("--out", help="write the raw JSON here")
    args = ap.parse_args(argv)
    result = compare(args.names)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
