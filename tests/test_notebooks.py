"""The Colab notebooks run top to bottom (nbclient, a real kernel) with small settings from the environment."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name, tmp_path, env):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert "colab.research.google.com" in nb.cells[0].source  # a Colab badge first
    assert "pip" in nb.cells[1].source and "install" in nb.cells[1].source  # then the install cell
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return nb


def _text(nb):
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.slow
def test_quickstart(tmp_path):
    nb = _run("quickstart.ipynb", tmp_path, {"LMKZOO_OFFLINE": "1"})
    out = _text(nb)
    assert "1 face(s)" in out and "ibug68 (68, 2)" in out
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.slow
def test_train_and_evaluate(tmp_path, shared_data):
    nb = _run("train_and_evaluate.ipynb", tmp_path, {"LMKZOO_DATA": str(shared_data / "lfw_faces"),
                                                     "LMKZOO_WORK": str(tmp_path / "work"), "LMKZOO_NB_EPOCHS": "1",
                                                     "LMKZOO_NB_STEPS": "3"})
    assert "| full |" in _text(nb)
    assert (tmp_path / "work" / "report" / "ced.png").exists() and (tmp_path / "work" / "run" / "final.keras").exists()


@pytest.mark.slow
def test_export_tflite(tmp_path):
    nb = _run("export_tflite.ipynb", tmp_path, {"LMKZOO_WORK": str(tmp_path / "work"), "LMKZOO_OFFLINE": "1"})
    out = _text(nb)
    assert "mean distance to Keras" in out and "first point in crop pixels" in out
    assert (tmp_path / "work" / "default_int8.tflite").exists()
