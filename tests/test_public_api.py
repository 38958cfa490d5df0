"""The top-level API: ``import lmkzoo`` stays light (no TensorFlow, no Keras), and the public entry points
(``load``, ``train``, ``evaluate``, ``read_image``, ...) resolve lazily from ``lmkzoo`` itself."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("tensorflow", "keras", "tf_keras", "tensorflow_datasets", "torch", "onnxruntime")


def _imported_after(code: str) -> list[str]:
    """Top-level packages among ``HEAVY`` that a fresh interpreter has imported after running ``code``."""
    probe = (f"import sys\n{code}\nimport json\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_lmkzoo_imports_neither_tensorflow_nor_keras():
    assert _imported_after("import lmkzoo") == []


def test_packages_and_light_names_stay_light():
    code = ("import lmkzoo, lmkzoo.families, lmkzoo.training, lmkzoo.inference, lmkzoo.data\n"
            "lmkzoo.read_image, lmkzoo.list_models('pipnet*'), lmkzoo.get_spec('pipnet_lite'), lmkzoo.schemes.get('ibug68')")
    assert _imported_after(code) == []


def test_entry_points_are_top_level_names():
    import lmkzoo
    from lmkzoo.image_io import read_image
    from lmkzoo.inference.evaluate import evaluate
    from lmkzoo.inference.loader import load
    from lmkzoo.training.train import train

    assert lmkzoo.train is train and lmkzoo.evaluate is evaluate and lmkzoo.read_image is read_image
    assert lmkzoo.load is load
    for name in ("load", "train", "evaluate", "read_image", "list_models", "get_spec", "Landmarker", "FaceLandmarks"):
        assert name in lmkzoo.__all__ and name in dir(lmkzoo), name


def test_read_image_reads_rgb_uint8():
    import lmkzoo

    img = lmkzoo.read_image(ROOT / "lmkzoo" / "assets" / "samples" / "astronaut.jpg")
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


def test_unknown_top_level_name_raises_attribute_error():
    import lmkzoo

    try:
        lmkzoo.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("lmkzoo.no_such_name did not raise AttributeError")
