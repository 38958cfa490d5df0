"""The README's "Pretrained models" table, generated from the zoo's model cards and the recorded benchmarks.

    python tools/model_table.py            # print the table
    python tools/model_table.py --write    # replace the block between the README's markers

One row per zoo entry whose weights ship (``lmkzoo list --pretrained``). Every number comes from a file in the
repository, so the table cannot drift from them (tests/test_docs.py regenerates it and compares):

* params, GMACs and the LiteRT time: ``benchmarks/results/*.json`` (``lmkzoo bench``): the serving graph, batch 1,
  float32 LiteRT on 2 threads, the median on the machine described in benchmarks/README.md. A model's speed does not
  depend on its weights, so an entry measured under another name of the same network (same family builder and
  arguments, the PIPNet mean face and the covariance scale aside: LaplaceKL+D serves LaplaceKL's RCN) stands for it;
  "-" when no benchmark has the network;
* the NMEs: the card (``weights.metrics``, written by tools/ship_model.py): 300-W Common, inter-ocular, annotation-box
  protocol and through the built-in detector; the dlib faces through the detector;
* the paper's number: the zoo entry's ``paper_metrics`` (``300w_common_nme``), measured on all 3,148 training faces
  by the papers, so it is an anchor rather than a like-for-like comparison;
* below it, for models that predict a covariance per landmark (UGLLI, LaplaceKL): the card's uncertainty numbers on
  300-W Common: the Pearson correlation of ``|Σ|^¼`` with the point error (per landmark, per face) and the share of
  reference points inside the 1σ / 2σ ellipses after the covariance scale fitted on the selection slice.

Reads zoo.yaml and JSON only (no TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
BEGIN = "<!-- BEGIN pretrained models (tools/model_table.py --write) -->"
END = "<!-- END pretrained models -->"
HEADER = ("| model | params | GMACs | LiteRT ms | 300-W Common NME % (box / detector) | paper | dlib faces NME % "
          "(detector) | training data | weights licence |\n|---|---|---|---|---|---|---|---|---|")


_NOT_ARCHITECTURE = ("meanface", "covariance_scale")  # builder arguments that change no layer or op count


def _builder_key(spec) -> str:
    return json.dumps({k: v for k, v in spec.builder.items() if k not in _NOT_ARCHITECTURE}, sort_keys=True)


def benchmark_rows(results: Path = RESULTS) -> dict[str, dict]:
    """Model name -> ``{"params", "gmacs", "litert_ms"}`` from every ``lmkzoo bench`` JSON in ``results``
    (2-thread runs; files are read in name order, and a later file's figure wins when several measured a model)."""
    found: dict[str, dict] = {}
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        for run in data.get("runs", []) if isinstance(data, dict) else []:
            if run.get("threads") != 2:
                continue
            for m in run.get("models", []):
                graph = m.get("runtimes", {}).get("tflite", {}).get("batch1", {}).get("graph", {})
                if "median_ms" in graph:
                    found[m["model"]] = {"params": m["params"], "gmacs": m["gmacs"], "litert_ms": graph["median_ms"]}
    return found


def _speed(spec, bench: dict[str, dict]):
    from lmkzoo.registry import get_spec

    if spec.name in bench:
        return bench[spec.name]
    for name in sorted(bench):
        try:
            other = get_spec(name)
        except Exception:  # a benchmark of a model the zoo no longer has
            continue
        if (other.family == spec.family and _builder_key(other) == _builder_key(spec)
                and tuple(other.input_size) == tuple(spec.input_size)):
            return bench[name]
    return None


def _short_data(training_data: str) -> str:
    """``"300-W (iBUG ...) ...; plus LFW (...) ..."`` -> ``"300-W + LFW"``: each part's name before its bracket."""
    return " + ".join(part.split(" (")[0].strip() for part in training_data.split("; plus "))


def _fmt(x, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table() -> str:
    from lmkzoo.registry import load_zoo

    bench = benchmark_rows()
    rows = [HEADER]
    for name, spec in sorted(load_zoo().items()):
        w = spec.weights
        if w is None:
            continue
        speed = _speed(spec, bench)
        m = w.metrics
        common = m.get("300w_common_nme")
        nme = "-" if common is None else f"{common:.2f} / {_fmt(m.get('300w_common_nme_detector'))}"
        paper = spec.paper_metrics.get("300w_common_nme")
        rows.append(" | ".join([
            f"| `{name}`",
            "-" if speed is None else f"{speed['params'] / 1e6:.2f}M",
            "-" if speed is None else f"{speed['gmacs']:.3f}",
            "-" if speed is None else f"{speed['litert_ms']:.2f}",
            nme,
            _fmt(paper),
            _fmt(m.get("faces68_dlib_nme_detector")),
            _short_data(w.training_data),
            f"{w.license} |",
        ]))
    uncertain = uncertainty_rows()
    return "\n".join(rows + ([""] + uncertain if uncertain else []))


UNCERTAINTY_HEADER = ("| model | Pearson per landmark | Pearson per face | inside 1σ % | inside 2σ % | covariance scale |\n"
                      "|---|---|---|---|---|---|")


def _pct(metrics: dict, key: str) -> str:
    return _fmt(None if metrics.get(key) is None else 100 * metrics[key], 1)


def uncertainty_rows() -> list[str]:
    """The uncertainty table (header + rows) of the shipped models whose card has the numbers; empty if none."""
    from lmkzoo.registry import load_zoo

    rows = []
    for name, spec in sorted(load_zoo().items()):
        m = spec.weights.metrics if spec.weights is not None else {}
        if "300w_common_uncertainty_pearson_per_landmark" not in m:
            continue
        rows.append(" | ".join([
            f"| `{name}`",
            _fmt(m.get("300w_common_uncertainty_pearson_per_landmark"), 3),
            _fmt(m.get("300w_common_uncertainty_pearson_per_image"), 3),
            _pct(m, "300w_common_uncertainty_coverage_1sigma"),
            _pct(m, "300w_common_uncertainty_coverage_2sigma"),
            f"{_fmt(m.get('covariance_scale_fitted_on_selection_slice'), 3)} |",
        ]))
    return [UNCERTAINTY_HEADER] + rows if rows else []


def replace_block(text: str, block: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {BEGIN!r} ... {END!r}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="write the table into README.md between its markers")
    args = ap.parse_args(argv)
    block = table()
    if args.write:
        README.write_text(replace_block(README.read_text(encoding="utf-8"), block), encoding="utf-8")
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
