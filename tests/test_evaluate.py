"""``lmkzoo evaluate`` (reports per subset, the deployed predict path) and ``lmkzoo train`` end to end per family."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets_tfds._common.testing import build, examples
from lmkzoo import metrics
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.inference.evaluate import PROTOCOLS, evaluate, parse_data
from lmkzoo.inference.landmarker import Landmarker
from lmkzoo.inference.loader import build_network
from lmkzoo.registry import family_default_models, get_spec, list_models
from lmkzoo.testing.tiny import tiny_spec

ROOT = Path(__file__).resolve().parents[1]


def _tiny_landmarker(name, size=64):
    spec = tiny_spec(name, size, backbone_args={"width_multiplier": 0.125}, extra_channels=16, num_neighbors=4)
    return Landmarker(spec, build_network(spec))


def test_report_matches_predict_and_has_wflw_attributes(tmp_path):
    b = build("wflw", tmp_path / "tfds")
    lm = _tiny_landmarker("pipnet_r18.wflw")
    report = evaluate(lm, "wflw:test", data_dir=tmp_path / "tfds", out_dir=tmp_path / "report")
    exs = examples(b, "test")
    assert report.num_faces == len(exs) and report.norm == "inter_ocular" and report.cutoff == 0.10
    # the same numbers as Landmarker.predict with the dataset's boxes (the deployed path), computed here
    pred = np.stack([lm.predict(ex["image"], boxes=[ex["bbox"]])[0].points for ex in exs])
    gt = np.stack([ex["landmarks"] for ex in exs])
    nmes = metrics.nme(pred, gt, scheme="wflw98", visible=np.stack([ex["visible"] for ex in exs]))
    assert np.isclose(report.nme, np.mean(nmes), rtol=1e-3)
    assert np.isclose(report.fr, metrics.failure_rate(nmes, 0.10)) and np.isclose(report.auc, metrics.auc(nmes, 0.10))
    # WFLW's attribute subsets: each one is the mean over the faces carrying the flag
    flags = {name: np.array([ex["attributes"][name] for ex in exs]) for name in exs[0]["attributes"]}
    for name, mask in flags.items():
        if mask.any():
            assert np.isclose(report.subsets[name]["nme"], np.mean(nmes[mask]), rtol=1e-3)
            assert report.subsets[name]["num_faces"] == int(mask.sum())
        else:
            assert name not in report.subsets
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["nme"] == pytest.approx(report.nme) and saved["subsets"].keys() == report.subsets.keys()
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| full |" in md and f"{100 * report.nme:.2f}" in md
    assert (tmp_path / "report" / "ced.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_300w_subsets_and_box_protocols(tmp_path):
    build("ibug_300w", tmp_path / "tfds", config="split1")
    lm = _tiny_landmarker("pipnet_r18.300w")
    report = evaluate(lm, "ibug_300w/split1:test_common+test_challenge", data_dir=tmp_path / "tfds")
    assert {"common", "challenge"} <= set(report.subsets)
    n = sum(report.subsets[k]["num_faces"] for k in ("common", "challenge"))
    assert n == report.num_faces
    box = evaluate(lm, "ibug_300w/split1:test_common+test_challenge", data_dir=tmp_path / "tfds", norm="bbox",
                   cutoff=0.08, subsets=False)
    assert box.norm == "bbox" and box.cutoff == 0.08 and box.subsets == {}
    assert box.nme != report.nme
    assert PROTOCOLS["jd_landmark"] == ("bbox", 0.08) and PROTOCOLS["aflw19"] == ("bbox", 0.07)


def test_evaluate_bad_input(tmp_path):
    with pytest.raises(InvalidArgumentError, match="TFDS_NAME"):
        parse_data(":test")
    assert parse_data("wflw") == ("wflw", "test")


def _cli(*args, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "lmkzoo.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


# tiny builder overrides per family, so each trains a few steps on the shared faces in seconds
TINY = {
    "pipnet": ({"backbone_args": {"width_multiplier": 0.125}, "extra_channels": 16, "num_neighbors": 4}, 64),
    "heatmap": ({"backbone": "resnet18", "backbone_args": {"width_multiplier": 0.25}, "filters": 16}, 64),
    "laplacekl": ({"width": 0.0625}, 80),
    "uglli": ({"num_stacks": 2, "channels": 8, "growth_rate": 4, "neck_size": 2, "num_blocks": 2}, 64),
    "lotr": ({"backbone_args": {"width_multiplier": 0.25}, "reduce_channels": 16, "dim": 16, "num_heads": 2, "ffn_dim": 32,
              "head_units": [32, 32]}, 64),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(family_default_models()))
def test_cli_train_then_evaluate_each_family(family, lfw_tfds, tmp_path, capsys):
    """``lmkzoo train`` (recipe, one short epoch on the LFW faces) then ``lmkzoo evaluate`` of its final.keras; the
    family's first 68-point zoo model (the LFW faces carry iBUG-68 teacher points)."""
    from lmkzoo import cli

    name = next(n for n in list_models(family=family) if get_spec(n).scheme == "ibug68")
    builder, size = TINY[family]
    data_dir = Path(lfw_tfds.data_dir).parents[2]
    out = tmp_path / "run"
    assert cli.main(["train", name, "--data", "landmark_folder/lfw_teacher68", "--data-dir", str(data_dir), "--epochs", "1",
                     "--steps-per-epoch", "3", "--batch-size", "4", "--input-size", str(size), "--builder",
                     json.dumps(builder), "--val-split", "none", "--out", str(out),
                     # the heatmap and LOTR 300w tags start from ImageNet MobileNetV2 (width 1.0): these tiny ones from
                     # random weights
                     "--backbone-init", "none"]) == 0
    assert (out / "final.keras").exists() and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["out"] == str(out)
    assert cli.main(["evaluate", str(out / "final.keras"), "--data", "landmark_folder/lfw_teacher68:validation",
                     "--data-dir", str(data_dir), "--max-faces", "12", "--json", "--out", str(tmp_path / "report")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["model"] == name and rep["num_faces"] == 12 and np.isfinite(rep["nme"])
    assert (tmp_path / "report" / "ced.png").exists()
    if family == "uglli":
        assert rep["uncertainty_error_pearson"] is not None


@pytest.mark.slow
def test_cli_trains_laplacekl_d_on_unlabeled_faces_with_teacher_points(lfw_tfds, tmp_path, capsys):
    """``lmkzoo train laplacekl_rcn_d... --unlabeled landmark_folder/lfw_teacher68`` (tools/train_300w.py's LaplaceKL+D
    command): the unlabelled branch crops the faces at their teacher points' five points, and a changed input size
    (a ModelSpec, not a name, reaches the adversarial trainer) works too."""
    from lmkzoo import cli

    data_dir = str(Path(lfw_tfds.data_dir).parents[2])
    out = tmp_path / "run"
    assert cli.main(["train", "laplacekl_rcn_d.300w_quarter", "--data", "landmark_folder/lfw_teacher68", "--data-dir",
                     data_dir, "--unlabeled", "landmark_folder/lfw_teacher68", "--epochs", "1", "--steps-per-epoch", "2",
                     "--batch-size", "4", "--input-size", "64", "--builder", '{"width": 0.0625}', "--val-split", "none",
                     "--out", str(out)]) == 0
    hist = json.loads((out / "history.json").read_text())
    assert hist["discriminator_updates"] == 2 and np.isfinite(hist["d_loss"][-1])
    assert (out / "final.keras").exists() and (out / "discriminator.weights.h5").exists()


def test_cli_train_and_evaluate_user_errors(tmp_path):
    r = _cli("train", "pipnet_lite", "--data", "landmark_folder/lfw_teacher68", "--builder", "{not json", "--out",
             str(tmp_path / "x"))
    assert r.returncode == 2 and "--builder must be a JSON object" in r.stderr
    r = _cli("evaluate", "no_such_model", "--data", "wflw:test")
    assert r.returncode == 2 and "no_such_model" in r.stderr
