"""Every model whose weights ship inside the package: it loads offline (verified by SHA-256), its card is complete,
and it finds the landmarks of real faces: the first 24 faces of the 300-W Common test with the annotation boxes,
within a bound derived from the NME its card reports (the whole Common test set, scored once when shipped)."""

import numpy as np
import pytest

import lmkzoo
from lmkzoo import metrics, schemes
from lmkzoo.registry import get_spec, list_models

SHIPPED = [n for n in list_models(pretrained=True) if get_spec(n).weights.file]
#: bound for a model whose card has no 300-W Common number (trained on other data)
DEFAULT_BOUND = 8.0


@pytest.fixture(scope="module")
def common_faces(ibug_300w_tfds):
    from datasets_tfds._common.testing import examples

    return examples(ibug_300w_tfds, "test_common")[:24]


def test_something_ships():
    from lmkzoo.registry import default_model_name

    assert SHIPPED and default_model_name() in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_offline_and_finds_real_landmarks(name, common_faces, monkeypatch):
    monkeypatch.setenv("LMKZOO_OFFLINE", "1")
    spec = get_spec(name)
    card = spec.weights
    assert card.sha256 and card.license and card.data_license and card.training_data and card.made_by
    assert card.dtype == "float16" and card.metrics
    lm = lmkzoo.load(name)
    scheme = schemes.get(spec.scheme)
    pred, gt = [], []
    for ex in common_faces:
        kw = ({"five_points": [scheme.five_points(ex["landmarks"])]}
              if spec.crop.get("policy", "box") != "box" else {"boxes": [ex["bbox"]]})
        (face,) = lm.predict(ex["image"], **kw)
        assert face.points.shape == (scheme.num_points, 2) and np.all(np.isfinite(face.points))
        if face.covariance is not None:
            assert np.all(np.linalg.eigvalsh(face.covariance) > 0), "covariances must be positive definite"
        pred.append(face.points)
        gt.append(ex["landmarks"])
    nme = 100 * float(np.mean(metrics.nme(np.stack(pred), np.stack(gt), scheme=spec.scheme)))
    reported = card.metrics.get("300w_common_nme")
    bound = 1.5 * reported + 1.0 if reported else DEFAULT_BOUND
    assert nme < bound, f"{name}: NME {nme:.2f} % on {len(gt)} Common faces; card {reported}, bound {bound:.2f}"


def test_wheel_with_every_shipped_model_stays_under_80_mb(tmp_path):
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                    str(root)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("lmkzoo-*.whl")
    assert wheel.stat().st_size <= 80e6, f"{wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB"
    names = zipfile.ZipFile(wheel).namelist()
    for name in SHIPPED:
        assert f"lmkzoo/{get_spec(name).weights.file}" in names, f"{name}'s weights are not in the wheel"
