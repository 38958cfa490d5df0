"""Exports of every family's default model (parametrised over the zoo registry): TFLite fp32 / fp16 / int8 and
ONNX against Keras on real face crops, metadata, ``lmkzoo.load(file)``, and the LiteRT GPU accelerator.

Tolerances (docs/design.md §4 and the export issue): decoded points within 1e-3 of the crop size for TFLite fp32,
ONNX and the GPU (fp32 mode), within 5e-3 for fp16 weights; int8 is reported (its NME against fp32 on the
dlib faces is in test_default_model.py). A randomly initialised network's score maps are flat noise whose
argmax flips under any weight rounding (measured: up to half the crop), so the fp16 tolerance is asserted on
models with trained weights (the embedded default model) and reported for the others.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

import lmkzoo
from lmkzoo import geometry, schemes
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.export.metadata import read_metadata
from lmkzoo.registry import family_default_models
from lmkzoo.testing.lfw import load_faces, teacher_rows

FAMILIES = family_default_models()
MODELS = sorted(FAMILIES.values())
#: builder overrides for the exports: UGLLI's default stacks 8 identical hourglasses (11 GMACs); 2 of them carry every
#: op the exporters lower (the stack repeats the same blocks, and the last hourglass's heads feed the decode), at a
#: quarter of the conversion time (~5 of the suite's minutes)
EXPORT_BUILDER = {"uglli": {"num_stacks": 2}}


def _faces(shared_data, n=6):
    """``n`` LFW photos with their teacher points (test inputs only: nothing here is evaluated as accuracy)."""
    images, pts = load_faces(shared_data, teacher_rows(shared_data)[::400][:n])
    return list(images), pts


def _crops(lm, images, pts):
    """The crops ``predict`` cuts for these faces (box or five-point policy, from the teacher points)."""
    sch = schemes.get("ibug68")
    out = []
    for img, p in zip(images, pts):
        aligned = lm.spec.crop.get("policy", "box") != "box"
        c, _ = lm.crops(img, five_points=[sch.five_points(p)]) if aligned else lm.crops(img, boxes=[geometry.points_bbox(p)])
        out.append(c)
    return np.concatenate(out)


def _max_point_error(a, b, size):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max() / max(size))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data):
    """{model: (keras Landmarker, crops, keras outputs, {variant: path})}, built lazily per model."""
    cache = {}

    def get(name):
        if name not in cache:
            import keras

            keras.utils.set_random_seed(0)
            # published (or embedded) weights where the zoo has them, else a random initialisation
            spec = lmkzoo.get_spec(name)
            builder = EXPORT_BUILDER.get(spec.family)
            lm = lmkzoo.load(name, weights="pretrained" if spec.has_weights and not builder else None, runtime="keras",
                             builder=builder)
            images, pts = _faces(shared_data)
            crops = _crops(lm, images, pts)
            cache[name] = (lm, crops, lm.runner(crops), tmp_path_factory.mktemp(name.replace(".", "_")))
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_tflite_and_onnx_match_keras(exported, name):
    lm, crops, ref, folder = exported(name)
    size = lm.input_size
    trained = lm.spec.has_weights
    for fmt, quantize, tol in [("tflite", None, 1e-3), ("onnx", None, 1e-3), ("tflite", "float16", 5e-3)]:
        path = lm.export(folder / f"model_{quantize}.{fmt}", format=fmt, quantize=quantize)
        other = lmkzoo.load(path)
        assert other.runtime == fmt and other.spec.name == lm.spec.name
        out = other.runner(crops)
        assert set(out) == set(ref), (fmt, sorted(out), sorted(ref))
        err = _max_point_error(out["landmarks"], ref["landmarks"], size)
        print(f"\n  {name} {fmt} {quantize or 'fp32'}: max point error {err:.2e} of the crop, {path.stat().st_size / 1e6:.2f} MB"
              + ("" if trained or not quantize else " (random weights: reported, not asserted)"))
        if quantize and not trained:
            assert np.all(np.isfinite(out["landmarks"])) and out["landmarks"].shape == ref["landmarks"].shape
            continue
        assert err < tol, (fmt, quantize, err)
        assert np.allclose(out["scores"], ref["scores"], rtol=1e-2, atol=1e-2 * np.abs(ref["scores"]).max())
        if "covariance" in ref:
            assert np.allclose(out["covariance"], ref["covariance"], rtol=1e-2, atol=1e-3 * max(size) ** 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_int8_export_runs_and_is_reported(exported, name, shared_data):
    lm, crops, ref, folder = exported(name)
    path = lm.export(folder / "model_int8.tflite", quantize="int8", representative_data=crops)
    meta = read_metadata(path)
    assert meta["quantize"] == "int8"
    assert meta["calibration"] == {"crops": len(crops), "source": "uint8 crops"}  # what calibrated it, in the file
    out = lmkzoo.load(path).runner(crops)
    assert out["landmarks"].shape == ref["landmarks"].shape and np.all(np.isfinite(out["landmarks"]))
    # the int8 error of a randomly initialised network says little; the trained default model's NME delta on
    # real faces is checked in test_default_model.py
    err = _max_point_error(out["landmarks"], ref["landmarks"], lm.input_size)
    fp32 = (folder / "model_None.tflite").stat().st_size if (folder / "model_None.tflite").exists() else None
    print(f"\n  {name} int8: {path.stat().st_size / 1e6:.2f} MB (fp32 {fp32 and fp32 / 1e6:.2f} MB), max point error "
          f"{err:.2e} of the crop (random weights)")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_compiles_on_the_litert_gpu_accelerator_alone(exported, name):
    """Fixed batch 1 (GPU delegates reject dynamic shapes); every op must be placed on the GPU (the compile with
    the GPU alone fails otherwise), and GPU (fp32 mode) and CPU agree."""
    from lmkzoo.export.gpu import check_gpu

    lm, crops, ref, folder = exported(name)
    path = lm.export(folder / "model_b1.tflite", batch_size=1)
    report = check_gpu(path, inputs={"images": crops[:1]})
    print(f"\n  {name}: {report.summary()} ({report.seconds:.0f} s)")
    assert report.fully_accelerated, report.summary() + "\n" + report.log[-2000:]
    assert "llvmpipe" in (report.adapter or "") or report.adapter
    size = lm.input_size
    assert _max_point_error(report.gpu_outputs["landmarks"], report.cpu_outputs["landmarks"], size) < 1e-3
    assert _max_point_error(report.gpu_outputs["landmarks"], ref["landmarks"][:1], size) < 1e-3
    if lm.spec.has_weights:
        # the GPU's default precision (fp16 arithmetic): for trained weights the points must stay within the fp16
        # tolerance (random weights give flat maps whose argmax flips under any rounding: not meaningful)
        half = check_gpu(path, inputs={"images": crops[:1]}, enforce_f32=False)
        err = _max_point_error(half.gpu_outputs["landmarks"], ref["landmarks"][:1], size)
        print(f"  {name}: GPU fp16 mode max point error {err:.2e} of the crop")
        assert half.fully_accelerated and err < 5e-3


@pytest.mark.slow
def test_metadata_and_predict_on_every_runtime(exported, shared_data):
    """One model, three runtimes: the same FaceLandmarks in image pixels from ``predict``."""
    name = FAMILIES["pipnet"]
    lm, crops, ref, folder = exported(name)
    images, pts = _faces(shared_data, 2)
    boxes = [[geometry.points_bbox(p)] for p in pts]
    want = lm.predict(images, boxes=boxes)
    for fmt in ("tflite", "onnx"):
        path = folder / f"model_None.{fmt}"
        if not path.exists():
            lm.export(path, format=fmt)
        meta = read_metadata(path)
        sch = schemes.get(lm.spec.scheme)
        assert meta["scheme"] == sch.name and meta["landmark_names"] == list(sch.names)
        assert meta["input_size"] == list(lm.input_size) and meta["mean"] == list(lm.spec.mean)
        assert meta["inputs"]["images"]["dtype"] == "uint8" and set(meta["outputs"]) == set(ref)
        got = lmkzoo.load(path).predict(images, boxes=boxes)
        for a, b in zip(got, want):
            assert len(a) == len(b) == 1
            assert np.allclose(a[0].points, b[0].points, atol=1e-3 * max(lm.input_size))
            assert a[0].scheme == b[0].scheme and a[0].model == b[0].model


@pytest.mark.slow
@pytest.mark.parametrize("family", ["pipnet", "laplacekl"])
def test_with_affine_export_returns_image_pixels(exported, shared_data, family):
    """``with_affine=True``: the graph also takes the crop → image affine and returns image pixels (and image-space
    covariances), equal to ``predict``'s; ``lmkzoo.load(file)`` predicts the same through it."""
    from ai_edge_litert.interpreter import Interpreter

    lm, _, _, folder = exported(FAMILIES[family])
    images, pts = _faces(shared_data, 2)
    boxes = [[geometry.points_bbox(p)] for p in pts]
    want = [f[0] for f in lm.predict(images, boxes=boxes, detector=None)]
    crops, affines = zip(*(lm.crops(img, boxes=b) for img, b in zip(images, boxes)))
    crops, to_image = np.concatenate(crops), geometry.invert_affine(np.concatenate(affines)).astype(np.float32)
    path = lm.export(folder / "with_affine.tflite", with_affine=True, batch_size=None)  # two crops in one call
    assert read_metadata(path)["inputs"]["crop_to_image"]["shape"][1:] == [2, 3]
    out = Interpreter(model_path=str(path)).get_signature_runner("serving_default")(images=crops, crop_to_image=to_image)
    tol = 1e-3 * max(lm.input_size)
    for i, face in enumerate(want):
        np.testing.assert_allclose(out["landmarks"][i], face.points, atol=tol)
        if face.covariance is not None:
            np.testing.assert_allclose(out["covariance"][i], face.covariance, atol=1e-3, rtol=1e-3)
    got = lmkzoo.load(path).predict(images, boxes=boxes)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a[0].points, b.points, atol=tol)


def test_onnx_metadata_props_are_json(exported):
    import onnx

    lm, _, _, folder = exported(FAMILIES["pipnet"])
    path = folder / "model_None.onnx"
    if not path.exists():
        lm.export(path, format="onnx")
    model = onnx.load(str(path))
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["model"] == lm.spec.name and props["export_format"] == "onnx"
    assert model.opset_import[0].version == 17


def test_export_bad_input(exported, tmp_path):
    lm, _, _, _ = exported(FAMILIES["pipnet"])
    with pytest.raises(InvalidArgumentError, match="format must be one of"):
        lm.export(tmp_path / "x.bin", format="coreml")
    with pytest.raises(InvalidArgumentError, match="quantize must be one of"):
        lm.export(tmp_path / "x.tflite", quantize="int4")
    with pytest.raises(InvalidArgumentError, match="needs representative_data"):
        lm.export(tmp_path / "x.tflite", quantize="int8")
    with pytest.raises(InvalidArgumentError, match="TFLite exports only"):
        lm.export(tmp_path / "x.onnx", format="onnx", quantize="float16")
    with pytest.raises(InvalidArgumentError, match="batch_size must be"):
        lm.export(tmp_path / "x.tflite", batch_size=0)
    assert not list(tmp_path.iterdir())  # nothing half-written
    (tmp_path / "junk.tflite").write_bytes(b"not a model")
    with pytest.raises(InvalidArgumentError, match="not a readable TFLite model"):
        lmkzoo.load(tmp_path / "junk.tflite")
    with pytest.raises(InvalidArgumentError, match="exported model not found"):
        lmkzoo.load(tmp_path / "missing.onnx")


def test_cli_export(tmp_path):
    out = tmp_path / "lite.tflite"
    r = subprocess.run([sys.executable, "-m", "lmkzoo.cli", "export", FAMILIES["pipnet"], "--weights", "none",
                        "--format", "tflite", "--quantize", "float16", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.exists() and read_metadata(out)["quantize"] == "float16"
    assert str(out) in r.stdout
    bad = subprocess.run([sys.executable, "-m", "lmkzoo.cli", "export", "no_such_model", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no_such_model" in bad.stderr
