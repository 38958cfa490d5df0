"""The knowledge the code cites lives in the repository: every ``docs/<page> §<section>`` citation names a page of
docs/ and a section that page has, and nothing points at files outside the checkout (the developers' shared
folder, machine paths)."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIP = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", "lmkzoo.egg-info"}
TEXT = {".py", ".md", ".yaml", ".yml", ".ipynb", ".toml", ".cfg", ".txt", ".bib", ".tsv"}
CITATION = re.compile(r"docs/(\w+\.md) (§[A-Z]?\d*(?:[-–][A-Z]?\d+)?)")
HEADING = re.compile(r"^#{2,4} ([A-Z]\d*|\d+)\. ", re.M)


def _files():
    for p in ROOT.rglob("*"):
        if p.is_file() and p.suffix in TEXT and not SKIP.intersection(p.relative_to(ROOT).parts):
            yield p


def _sections(page: Path) -> set[str]:
    return set(HEADING.findall(page.read_text(encoding="utf-8")))


def _cited(ref: str) -> list[str]:
    """``§A1-A3`` -> ``["A1", "A3"]``; ``§B`` -> ``["B"]``; ``§4`` -> ``["4"]``."""
    return [s for s in re.split(r"[-–]", ref.lstrip("§")) if s]


def test_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    assert pages, "docs/ has no pages"
    assert [p for p in pages if f"]({p})" not in index] == []


def test_citations_name_existing_pages_and_sections():
    found, bad = 0, []
    for f in _files():
        for line_no, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for page, ref in CITATION.findall(line):
                found += 1
                where = f"{f.relative_to(ROOT)}:{line_no}: docs/{page} {ref}"
                if not (DOCS / page).exists():
                    bad.append(f"{where} (no such page)")
                    continue
                missing = [s for s in _cited(ref) if s not in _sections(DOCS / page)]
                if missing:
                    bad.append(f"{where} (no section {', '.join(missing)})")
    assert found >= 27  # the docstrings, READMEs, zoo.yaml comments and tests that cite the reference facts
    assert bad == []


def test_nothing_points_outside_the_repository():
    """No citation of the developers' shared notes and no absolute machine path in code, tests, tools or notebooks
    (the shared data folder is found through $LMKZOO_SHARED_DATA or ../shared/data beside the checkout)."""
    outside = re.compile(r"REFERENCE_FACTS|LITERT_GPU\.md|(?<![\w/])DESIGN\.md|STYLE\.md|/work/|/root/|/home/\w")
    bad = []
    for f in _files():
        rel = f.relative_to(ROOT)
        if rel.parts[0] == "benchmarks" and "results" in rel.parts:
            continue  # recorded results say where they were measured
        if f == Path(__file__).resolve():
            continue
        for line_no, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if outside.search(line):
                bad.append(f"{rel}:{line_no}: {line.strip()[:120]}")
    assert bad == []


def test_readme_pretrained_table_is_generated_from_the_cards(load_tool):
    """The README's "Pretrained models" table is what tools/model_table.py makes of zoo.yaml's cards and the recorded
    benchmarks, one row per shipped model (regenerate it with ``python tools/model_table.py --write``)."""
    from lmkzoo.registry import load_zoo

    model_table = load_tool("model_table")
    block = model_table.table()
    shipped = [name for name, s in load_zoo().items() if s.weights is not None]
    assert shipped and all(f"| `{name}` |" in block for name in shipped)
    # models with covariances get a row in the uncertainty table (Pearson, ellipse coverage, covariance scale)
    zoo = load_zoo()
    uncertain = [n for n in shipped if "300w_common_uncertainty_pearson_per_landmark" in zoo[n].weights.metrics]
    rows = model_table.uncertainty_rows()
    assert len(rows) == (1 + len(uncertain) if uncertain else 0)  # the header (two lines), then one row each
    assert all(any(r.startswith(f"| `{n}` |") for r in rows) for n in uncertain)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{model_table.BEGIN}\n{block}\n{model_table.END}" in readme


def test_card_comparisons_are_what_their_cards_say(load_tool):
    """tools/compare_models.py tables come from the cards alone: its JSON files in benchmarks/results match the cards
    in zoo.yaml today (regenerate with the command in benchmarks/README.md), and every shipped model compares."""
    from lmkzoo.registry import load_zoo

    compare_models = load_tool("compare_models")
    shipped = sorted(name for name, s in load_zoo().items() if s.weights is not None)
    result = compare_models.compare(shipped)
    assert list(result["models"]) == shipped
    table = compare_models.markdown(result)
    assert all(f"| `{name}` |" in table for name in shipped) and "Common NME %" in table
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        saved = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(saved, dict) and saved.get("source") == result["source"]:
            assert saved == compare_models.compare(list(saved["models"])), f"{path.name} differs from the cards"
