"""Issue 22, item 10: every expected failure of the command line is one line on stderr and exit status 2.

One mechanism: the library raises typed lmkzoo errors at its boundaries (datasets, weights and model files,
exports, checkpoints, images), argparse types check numbers, and ``lmkzoo.cli.main`` prints either as
``lmkzoo CMD: error: ...``. A failed ``train`` leaves no run folder behind. The cases run in this process
(``cli.main``), so a traceback would surface as an exception here."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from lmkzoo import cli

IMAGE = "lmkzoo/assets/samples/astronaut.jpg"


@pytest.fixture(scope="module")
def bad(tmp_path_factory, lfw_tfds):
    """Bad inputs on disk: files that are not what their name says, a model of another scheme, empty folders."""
    import cv2
    import torch

    from lmkzoo.inference.loader import build_network
    from lmkzoo.testing.tiny import tiny_spec
    from lmkzoo.testing.torch_pipnet import random_pipnet

    d = tmp_path_factory.mktemp("bad")
    (d / "text.weights.h5").write_bytes(b"not hdf5 at all")
    with zipfile.ZipFile(d / "whole.keras", "w") as z:
        z.writestr("config.json", "{}")
    (d / "truncated.keras").write_bytes((d / "whole.keras").read_bytes()[:20])
    other = build_network(tiny_spec("pipnet_r18.aflw", 64, backbone_args={"width_multiplier": 0.125},
                                    extra_channels=16, num_neighbors=4))
    other.save(d / "aflw19_model.keras")  # 19 points: not weights for the 68-point default model
    (d / "text.jpg").write_text("a text file named like an image")
    (d / "empty").mkdir()
    (d / "a_folder").mkdir()
    (d / "blank").mkdir()
    for i in range(3):
        cv2.imwrite(str(d / "blank" / f"blank{i}.png"), np.full((240, 320, 3), 40 * i + 20, np.uint8))
    sd = random_pipnet(net_stride=32).state_dict()
    sd["layer1.0.conv1.weight"] = torch.tensor(0.5)  # a scalar where a conv weight belongs
    torch.save(sd, d / "scalar_conv.pth")
    sd = {"cls_layer.weight": torch.tensor(1.0)}
    torch.save(sd, d / "scalar_head.pth")
    return d, Path(lfw_tfds.data_dir).parents[2]


LFW = "landmark_folder/lfw_teacher68"

# (argv with {d} = the folder of bad inputs and {lfw} = a data dir holding LFW, what the line must say)
CASES = [
    (["predict", IMAGE, "--model", "pipnet_lite", "--weights", "{d}/text.weights.h5"], "is not a Keras .weights.h5 file"),
    (["predict", IMAGE, "--model", "pipnet_lite", "--weights", "{d}/truncated.keras"], "is not a .keras model file"),
    (["predict", IMAGE, "--model", "pipnet_lite", "--weights", "{d}/aflw19_model.keras"],
     "cannot be the weights of pipnet_lite"),
    (["predict", IMAGE, "--model", "{d}/truncated.keras"], "not a zip archive"),
    (["predict", IMAGE, "--model", "{d}/missing.keras"], "model file not found"),
    (["predict", IMAGE, "--model", "pipnet_lte"], "did you mean 'pipnet_lite'"),
    (["predict", IMAGE, "--out", "{d}/overlay.txt"], "an overlay file must end in one of"),
    (["predict", "{d}/missing.jpg"], "image file not found"),
    (["predict", "{d}/text.jpg"], "text.jpg"),
    (["predict", IMAGE, "--weights", "none", "--model", "pipnet_lite", "--runtime", "tensorrt"], "invalid choice"),
    (["train", "pipnet_lite", "--data", "nosuchdataset", "--out", "{d}/run"], "unknown dataset 'nosuchdataset'"),
    (["train", "pipnet_lite", "--data", "landmark_folder/lfw_teacher86", "--out", "{d}/run"],
     "did you mean 'landmark_folder/lfw_teacher68'"),
    (["train", "pipnet_lite", "--data", LFW, "--epochs", "0", "--out", "{d}/run"], "--epochs: expected a positive integer"),
    (["train", "pipnet_lite", "--data", LFW, "--batch-size", "0", "--out", "{d}/run"], "--batch-size: expected a positive"),
    (["train", "pipnet_lite", "--data", LFW, "--steps-per-epoch", "-3", "--out", "{d}/run"], "--steps-per-epoch"),
    (["train", "pipnet_lite", "--data", LFW, "--lr", "nan", "--out", "{d}/run"], "--lr: expected a positive number"),
    (["train", "pipnet_lite", "--data", LFW, "--epochs", "two", "--out", "{d}/run"], "got 'two'"),
    (["train", "pipnet_lite", "--data", LFW, "--manual-dir", "{d}/empty", "--out", "{d}/run"], "is empty"),
    (["train", "pipnet_lite", "--data", LFW, "--manual-dir", "{d}/missing", "--out", "{d}/run"], "is not a folder"),
    (["train", "pipnet_lite", "--data", LFW, "--data-dir", "{d}/empty", "--out", "{d}/run"], "is not built in"),
    (["train", "pipnet_lite", "--data", LFW, "--data-dir", "{lfw}", "--train-split", "trian", "--out", "{d}/run"],
     "has no split 'trian'"),
    (["train", "pipnet_lte", "--data", LFW, "--out", "{d}/run"], "did you mean 'pipnet_lite'"),
    (["train", "pipnet_lite", "--data", LFW, "--builder", "{{not json", "--out", "{d}/run"], "--builder must be a JSON"),
    (["evaluate", "pipnet_lite", "--data", "nosuchdataset:test"], "unknown dataset 'nosuchdataset'"),
    (["evaluate", "pipnet_lite", "--data", "wflw/nosuchconfig:test"], "wflw has no config 'nosuchconfig'"),
    (["evaluate", "pipnet_lite", "--data", LFW + ":validaton", "--data-dir", "{lfw}"], "did you mean 'validation'"),
    (["evaluate", "pipnet_lite", "--data", LFW + ":test", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "{d}/truncated.keras", "--data", LFW + ":validation", "--data-dir", "{lfw}"], "not a zip archive"),
    (["export", "pipnet_lite", "--quantize", "int8", "--representative", "{d}/nosuchdir", "--out", "{d}/x.tflite"],
     "is neither a folder nor a TFDS split"),
    (["export", "pipnet_lite", "--quantize", "int8", "--representative", "{d}/text.jpg", "--out", "{d}/x.tflite"],
     "is a file"),
    (["export", "pipnet_lite", "--quantize", "int8", "--representative", "{d}/blank", "--out", "{d}/x.tflite"],
     "found no face"),
    (["export", "pipnet_lite", "--out", "{d}/a_folder"], "is a folder"),
    (["export", "pipnet_lite", "--batch-size", "-1"], "--batch-size"),
    (["convert", "pipnet-torch", "{d}/scalar_conv.pth", "--scheme", "wflw98", "--no-check", "--out", "{d}/conv"],
     "wrong shapes: layer1.0.conv1.weight"),
    (["convert", "pipnet-torch", "{d}/scalar_head.pth", "--scheme", "ibug68", "--out", "{d}/conv"],
     "cls_layer.weight must be a 4-D convolution weight"),
    (["convert", "pipnet-torch", "{d}/text.jpg", "--scheme", "ibug68"], "not a readable PyTorch checkpoint"),
    (["info", "pipnet_lte"], "did you mean 'pipnet_lite'"),
    (["data", "show", "nosuchdataset"], "unknown dataset"),
    (["data", "show", LFW, "-n", "0"], "-n: expected a positive integer"),
    (["data", "show", LFW, "--data-dir", "{lfw}", "--split", "validaton", "--out", "{d}/grid.png"],
     "did you mean 'validation'"),
    (["bench", "pipnet_lite", "--iters", "0"], "--iters"),
    (["bench", "pipnet_lite", "--threads", "1,0"], "--threads"),
    (["download", "nosuchmodel"], "unknown model 'nosuchmodel'"),
]


@pytest.mark.parametrize("argv,says", CASES, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in enumerate(CASES)])
def test_every_user_error_is_one_line_and_status_2(bad, capsys, argv, says):
    bad, lfw = bad
    argv = [a.format(d=bad, lfw=lfw) for a in argv]
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("lmkzoo ")]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert says in lines[0], lines[0]
    assert not (bad / "run").exists()  # nothing half-made: no run folder for a refused run
    assert not list(bad.glob("*.part")) and not list(bad.glob(".*.part"))


def test_train_refuses_bad_settings_before_making_a_run_folder(tmp_path):
    """The API does the same checks as the command line (``epochs=0`` used to mean "the recipe's epochs")."""
    from lmkzoo.errors import InvalidArgumentError
    from lmkzoo.training.train import train

    for kw in ({"epochs": 0}, {"batch_size": -4}, {"steps_per_epoch": 0}, {"learning_rate": float("nan")},
               {"learning_rate": -1e-3}, {"epochs": 2.5}, {"eval_every": 0}):
        with pytest.raises(InvalidArgumentError, match=f"{next(iter(kw))} must be a (positive|finite)"):
            train("pipnet_lite", data="landmark_folder/lfw_teacher68", out_dir=tmp_path / "run", **kw)
        assert not (tmp_path / "run").exists()
