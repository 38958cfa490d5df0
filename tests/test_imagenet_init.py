"""The ImageNet MobileNetV2 start (shared/pretrained, an int8 TFLite classifier with BatchNorm folded): the converted
float backbone with the file's classifier classifies the shared photo as the TFLite file does, the BatchNorm
calibration keeps the network's function, bad files and backbones are refused, and a recipe asks for it."""

from pathlib import Path

import numpy as np
import pytest

from lmkzoo.convert.mobilenet_v2_tflite import (
    KNOWN_SHA256,
    imagenet_classifier,
    load_imagenet_mobilenet_v2,
    read_mobilenet_v2_tflite,
)
from lmkzoo.errors import CheckpointMismatchError, InvalidArgumentError

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def pretrained(shared_data) -> Path:
    return shared_data.parent / "pretrained"


@pytest.fixture(scope="module")
def cat(pretrained):
    import cv2

    from lmkzoo.image_io import read_image

    return cv2.resize(read_image(pretrained / "cat.bmp"), (224, 224), interpolation=cv2.INTER_AREA)


def _tflite_logits(path, image):
    """The file's own classifier logits (dequantized int8, before the softmax) and probabilities for ``image``."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], image[None])
    it.invoke()
    (logit_t,) = [t for t in it.get_tensor_details() if "Conv2d_1x1_output/BiasAdd" in t["name"] and t["quantization"][0]]
    scale, zero = logit_t["quantization"]
    logits = (it.get_tensor(logit_t["index"]).reshape(-1).astype(np.float64) - zero) * scale
    return logits


def test_converted_mobilenet_v2_classifies_the_photo_like_the_tflite_file(pretrained, cat):
    path = pretrained / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    labels = (pretrained / "imagenet_labels.txt").read_text().splitlines()
    ref = _tflite_logits(path, cat)
    model = imagenet_classifier(path)
    probs = model.predict(((cat / 255.0 - MEAN) / STD)[None].astype(np.float32), verbose=0)[0]
    ours = np.log(probs)
    top_ref, top_ours = list(np.argsort(-ref)[:5]), list(np.argsort(-ours)[:5])
    assert "cat" in labels[top_ours[0]].lower()
    # the three clear classes in the same order; classes 4-5 of both lie within 0.2 logit of each other at the
    # int8 file's resolution (0.063 per step) and swap with the padding difference, so: same set up to one class
    assert top_ours[:3] == top_ref[:3], ([labels[i] for i in top_ours], [labels[i] for i in top_ref])
    assert len(set(top_ours) & set(top_ref)) >= 4
    # the whole 1001-logit vector agrees (0.92 measured: int8 rounding of the file's activations, which the float
    # network does not have, and the one-pixel shift of the stride-2 pads)
    assert np.corrcoef(ref, ours)[0, 1] > 0.9


def test_file_facts_and_batchnorm_calibration_keep_the_function(pretrained, cat):
    from lmkzoo.models.backbones import MobileNetV2Backbone

    path = pretrained / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    src = read_mobilenet_v2_tflite(path)
    assert src["sha256"] == KNOWN_SHA256 and len(src["convs"]) == 52 and src["classifier"][0].shape == (1280, 1001)
    x = ((cat / 255.0 - MEAN) / STD).astype(np.float32)
    batch = np.stack([x, x[:, ::-1], np.roll(x, 20, axis=0), np.roll(x, -30, axis=1)])
    plain, calibrated = (MobileNetV2Backbone(input_shape=(224, 224, 3)) for _ in range(2))
    assert not load_imagenet_mobilenet_v2(plain, path)["calibrated"]
    info = load_imagenet_mobilenet_v2(calibrated, path, calibration_images=batch)
    assert info["calibrated"] and info["layers"] == 52
    a, b = plain(batch, training=False).numpy(), calibrated(batch, training=False).numpy()
    np.testing.assert_allclose(b, a, atol=2e-3 * np.abs(a).max())
    # training mode normalises by the batch statistics: with calibrated BatchNorms it starts at the ImageNet network
    t = calibrated(batch, training=True).numpy()
    assert np.abs(t - a).mean() < 0.05 * np.abs(a).mean()
    assert np.abs(plain(batch, training=True).numpy() - a).mean() > 0.3 * np.abs(a).mean()


def test_bad_files_and_backbones_are_refused(pretrained, tmp_path):
    from lmkzoo.models.backbones import MobileNetV2Backbone, ResNetBackbone

    path = pretrained / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(CheckpointMismatchError, match="not a TFLite model"):
        read_mobilenet_v2_tflite(junk)
    with pytest.raises(InvalidArgumentError, match="no file"):
        read_mobilenet_v2_tflite(tmp_path / "missing.tflite")
    with pytest.raises(InvalidArgumentError, match="width 1.0 only"):
        load_imagenet_mobilenet_v2(MobileNetV2Backbone(width_multiplier=0.5, input_shape=(64, 64, 3)), path)
    with pytest.raises(InvalidArgumentError, match="width 1.0 only"):
        load_imagenet_mobilenet_v2(ResNetBackbone(18, input_shape=(64, 64, 3)), path)


def test_recipe_backbone_init_needs_the_file(monkeypatch):
    from lmkzoo.registry import get_spec
    from lmkzoo.training.supervised import _init_backbone

    monkeypatch.delenv("LMKZOO_IMAGENET_MOBILENETV2", raising=False)
    spec = get_spec("pipnet_mnv2.300w")
    assert spec.recipe["backbone_init"] == "imagenet"
    with pytest.raises(InvalidArgumentError, match="--imagenet-weights"):
        _init_backbone(None, spec, "imagenet", None, None)
    with pytest.raises(InvalidArgumentError, match="unknown backbone_init"):
        _init_backbone(None, spec, "places365", None, None)


def test_backbone_init_override_on_the_command_line():
    """``--backbone-init none`` trains a recipe that asks for ImageNet weights from random ones (the heatmap test
    trains ``heatmap_mnv2_sdd.300w`` that way with a ResNet backbone); an unknown start is refused, exit 2."""
    import contextlib
    import io

    from lmkzoo import cli
    from lmkzoo.registry import get_spec

    assert get_spec("heatmap_mnv2_sdd.300w").recipe["backbone_init"] == "imagenet"
    assert get_spec("lotr_m.300w").recipe["backbone_init"] == "imagenet"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "heatmap_mnv2_sdd.300w", "--data", "ibug_300w", "--backbone-init", "places365"])
    assert exit_info.value.code == 2 and "--backbone-init" in err.getvalue() and "places365" in err.getvalue()
