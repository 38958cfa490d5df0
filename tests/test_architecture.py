"""The package's shape (issue 23, docs/architecture.md): no import cycle inside lmkzoo, layers import one way, no
oversized module, and ``.keras`` files saved before the modules moved still load and predict the same.

Imports are read with ``ast`` from the source: module-level *and* function-level ones (a lazy import inside a
function is still a dependency: it only moves the failure to run time), relative ones resolved, and
``importlib.import_module("lmkzoo....")`` calls with a literal name. ``import lmkzoo`` (the top-level package, whose
lazy names resolve on first use) is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lmkzoo"
DATA = Path(__file__).parent / "data" / "pre_arch"

#: layers, top to bottom: a module may import its own layer (without a cycle) or any layer below it
LAYERS = [
    {"cli", "bench", "__main__"},
    {"training", "inference"},
    {"families", "export", "hub", "data", "convert", "detection", "runtimes", "visualize", "testing", "flops", "samples"},
    {"models"},
    {"losses"},
    {"codecs", "metrics"},
    {"geometry", "schemes", "registry", "crops", "image_io", "assets", "api_export", "tf_env"},
    {"errors"},
]
#: modules allowed above ~500 lines, and why
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 500


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return mods


def import_graph() -> dict[str, set[str]]:
    """``module -> modules of lmkzoo it imports`` (module and function level)."""
    mods = _modules()

    def resolve(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name if name and name != "lmkzoo" else None

    graph = {}
    for mod, (path, is_pkg) in mods.items():
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                src = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else [])) if node.level \
                    else (node.module or "")
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src for a in node.names]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module":
                if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    targets = [node.args[0].value]
            out |= {t for t in map(resolve, (t for t in targets if t.startswith("lmkzoo"))) if t and t != mod}
        graph[mod] = out
    return graph


def cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layer(mod: str) -> int:
    top = mod.split(".")[1] if "." in mod else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{mod}: its top-level name {top!r} is in no layer of tests/test_architecture.py LAYERS")


def test_no_import_cycle_inside_lmkzoo():
    assert cycles(import_graph()) == []


def test_no_cycle_between_packages():
    graph = {}
    for mod, targets in import_graph().items():
        for t in targets:
            a, b = ".".join(mod.split(".")[:2]), ".".join(t.split(".")[:2])
            if a != b:
                graph.setdefault(a, set()).add(b)
    assert cycles(graph) == []


def test_layers_import_downwards_only():
    upward = sorted(f"{m} -> {t}" for m, ts in import_graph().items() if m != "lmkzoo" for t in ts
                    if _layer(t) < _layer(m))
    assert upward == []


def test_no_oversized_module():
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert set(long) <= set(LONG_MODULES), {k: v for k, v in long.items() if k not in LONG_MODULES}
    assert all(long.get(k, 0) > MAX_LINES for k in LONG_MODULES), "a module left the allow-list's reason: remove it"


def test_every_package_has_an_init():
    missing = [str(d.relative_to(ROOT)) for d in PKG.rglob("*") if d.is_dir() and "__pycache__" not in d.parts
               and any(d.glob("*.py")) and not (d / "__init__.py").exists()]
    assert missing == []


@pytest.mark.parametrize("family", ["pipnet", "uglli", "laplacekl"])
def test_keras_files_saved_before_the_moves_still_load(family):
    """tests/data/pre_arch/*.keras were written by main at a81c235, before issue 23 moved the modules (Keras names
    are registered as ``lmkzoo>ClassName``, independent of the module): they load and give the same outputs."""
    import lmkzoo
    from lmkzoo.inference.loader import _load_keras_file

    net = _load_keras_file(DATA / f"{family}.keras")
    ref = np.load(DATA / "outputs.npz")
    out = net.decode(net(ref["x"], training=False))
    keys = sorted(k.split("/", 1)[1] for k in ref.files if k.startswith(f"{family}/"))
    assert keys and set(keys) <= set(out)
    for key in keys:
        np.testing.assert_allclose(np.asarray(out[key]), ref[f"{family}/{key}"], rtol=1e-5, atol=1e-5)
    lm = lmkzoo.load(DATA / f"{family}.keras")
    assert lm.spec.family == family
