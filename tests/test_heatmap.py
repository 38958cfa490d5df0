"""Heatmap family (Earp et al. 2021): codec encode/decode (argmax, quarter offset, DARK), network, loss, zoo
entries and Table 3 compute, TFLite lowering, load + predict (flip test), tiny training on the shared data."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from lfw_faces import (
    check_five_point_predict_and_flip_test,
    example_dataset,
    examples,
    load_faces,
    person_split,
    teacher_rows,
)

import lmkzoo
from lmkzoo import geometry, schemes
from lmkzoo.codecs import HeatmapCodec
from lmkzoo.codecs.base import first_max_cells
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError
from lmkzoo.families.base import get_family
from lmkzoo.inference.loader import build_network
from lmkzoo.losses import HeatmapLoss
from lmkzoo.models.backbones import MobileNetV2Backbone
from lmkzoo.models.heatmap import HeatmapNetwork, heatmap_stride, paper_backbone_args, parse_strategy
from lmkzoo.registry import get_spec
from lmkzoo.testing.round_trip import check_codec_round_trip, check_keras_round_trip


# ------------------------------------------------------------------------------------------------ codec
def _gaussian_maps(centres, size, sigma):
    """Sampled Gaussians ``(1, H, W, K)`` at heatmap index coordinates ``centres`` (K, 2) (numpy reference)."""
    w, h = size
    xs, ys = np.arange(w), np.arange(h)
    maps = [np.exp(-((xs[None] - cx) ** 2 + (ys[:, None] - cy) ** 2) / (2 * sigma**2)) for cx, cy in centres]
    return np.stack(maps, -1)[None].astype(np.float32)


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.0])
def test_dark_decode_recovers_random_subpixel_centre(sigma):
    """Done-when: DARK recovers the centre of a synthetic Gaussian at a random sub-pixel location within
    0.05 heatmap pixels (it is exact for a Gaussian, up to the blur's discretisation)."""
    rng = np.random.default_rng(int(sigma * 10))
    codec = HeatmapCodec(16, (192, 192), stride=2, sigma=sigma, refine="dark")
    centres = rng.uniform(8, 88, (16, 2))  # heatmap index coordinates, away from the border
    out = codec({"heatmaps": _gaussian_maps(centres, codec.heatmap_size, sigma)})
    decoded = codec.to_heatmap_coords(out["landmarks"].numpy()[0])
    err = np.abs(decoded - centres)
    assert err.max() < 0.05, err.max()
    # the other decodes are as coarse as they should be
    coarse = {}
    for refine in ("none", "quarter"):
        c = HeatmapCodec(16, (192, 192), stride=2, sigma=sigma, refine=refine)
        landmarks = c({"heatmaps": _gaussian_maps(centres, c.heatmap_size, sigma)})["landmarks"].numpy()[0]
        coarse[refine] = np.abs(c.to_heatmap_coords(landmarks) - centres)
    assert coarse["none"].max() <= 0.5 + 1e-5 and coarse["quarter"].max() <= 0.25 + 1e-5
    assert coarse["quarter"].mean() < coarse["none"].mean()


def test_encode_decode_round_trip_in_crop_pixels_batched():
    codec = HeatmapCodec(5, (96, 64), stride=4, sigma=1.5)
    assert codec.heatmap_size == (24, 16)
    rng = np.random.default_rng(1)
    pts = np.stack([rng.uniform(12, 84, (3, 5)), rng.uniform(12, 52, (3, 5))], -1).astype(np.float32)
    t, _, out = check_codec_round_trip(codec, pts, atol=0.05 * codec.stride, rtol=0.0)
    assert t["heatmaps"].shape == (3, 16, 24, 5) and t["visible"].shape == (3, 5)
    assert np.allclose(t["heatmaps"].numpy().max(axis=(1, 2)), 1.0, atol=0.2)  # peak 1 at the exact centre
    assert out["landmarks"].shape == (3, 5, 2) and out["scores"].shape == (3, 5)
    # one example (no batch) gives the same maps as the batch
    single = codec.encode(pts[1])
    assert single["heatmaps"].shape == (16, 24, 5)
    assert np.allclose(single["heatmaps"].numpy(), t["heatmaps"].numpy()[1], atol=1e-6)


def test_heatmap_pixel_centres_map_to_input_pixels():
    """Heatmap pixel (i, j) covers input [j·s, (j+1)·s) x [i·s, (i+1)·s): its centre decodes to (j + 0.5)·s."""
    codec = HeatmapCodec(2, (64, 64), stride=4, refine="none")
    hm = np.zeros((1, 16, 16, 2), np.float32)
    hm[0, 3, 7, 0] = 1.0
    hm[0, 0, 15, 1] = 1.0
    out = codec({"heatmaps": hm})["landmarks"].numpy()[0]
    assert np.allclose(out, [[(7 + 0.5) * 4, (3 + 0.5) * 4], [(15 + 0.5) * 4, 0.5 * 4]])
    assert np.allclose(codec.from_heatmap_coords(codec.to_heatmap_coords([[10.0, 20.0]])), [[10.0, 20.0]])
    # the target of a point at a pixel centre peaks at exactly 1 on that pixel
    t = codec.encode(np.array([[30.0, 14.0], [2.0, 2.0]], np.float32))["heatmaps"].numpy()
    assert t[3, 7, 0] == pytest.approx(1.0) and t[0, 0, 1] == pytest.approx(1.0)


def test_first_max_matches_argmax_including_ties():
    rng = np.random.default_rng(2)
    maps = rng.integers(0, 4, (3, 7, 9, 5)).astype(np.float32)  # many ties: the first maximum must win
    row, col, oh = first_max_cells(keras.ops.convert_to_tensor(maps))
    flat = maps.reshape(3, 63, 5).argmax(1)
    assert np.array_equal(row.numpy(), flat // 9) and np.array_equal(col.numpy(), flat % 9)
    assert np.array_equal(oh.numpy().reshape(3, 63, 5).argmax(1), flat) and np.all(oh.numpy().sum((1, 2)) == 1)


def test_decode_mirrors_exactly():
    """Mirrored heatmaps (channels permuted) decode to mirrored points: the flip test's premise, sub-pixel."""
    sch = schemes.get("ibug68")
    codec = HeatmapCodec(68, (96, 96), stride=2, sigma=2.0)
    rng = np.random.default_rng(3)
    hm = np.abs(rng.normal(0, 0.05, (2, 48, 48, 68))).astype(np.float32)
    hm += codec.encode(rng.uniform(10, 86, (2, 68, 2)).astype(np.float32))["heatmaps"].numpy()
    mirrored = hm[:, :, ::-1, :][..., list(sch.flip_permutation)]
    a = codec({"heatmaps": hm})["landmarks"].numpy()
    b = codec({"heatmaps": mirrored})["landmarks"].numpy()
    assert np.allclose(geometry.flip_points(b, 96, sch.flip_permutation), a, atol=1e-3)


def test_encode_visibility_and_errors():
    codec = HeatmapCodec(3, (64, 64), stride=2)
    t = codec.encode(np.array([[10.0, 10.0], [-5.0, 10.0], [30.0, 70.0]], np.float32), np.array([1.0, 1.0, 1.0]))
    assert t["visible"].numpy().tolist() == [1.0, 0.0, 0.0]  # outside the crop: no target weight
    t = codec.encode(np.array([[10.0, 10.0]] * 3, np.float32), np.array([0, 1, 1]))
    assert t["visible"].numpy().tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ShapeMismatchError, match=r"\(\.\.\., 3, 2\)"):
        codec.encode(np.zeros((4, 2), np.float32))
    with pytest.raises(InvalidArgumentError, match="multiple of the heatmap stride 3"):
        HeatmapCodec(3, (64, 64), stride=3)
    with pytest.raises(InvalidArgumentError, match="refine must be one of"):
        HeatmapCodec(3, (64, 64), refine="taylor")
    with pytest.raises(InvalidArgumentError, match="sigma"):
        HeatmapCodec(3, (64, 64), sigma=0)


def test_encode_runs_inside_tf_data():
    codec = HeatmapCodec(4, (32, 32), stride=2, sigma=1.0)
    pts = np.random.default_rng(4).uniform(2, 30, (6, 4, 2)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(pts).batch(3).map(lambda p: codec.encode(p))
    batches = list(ds)
    assert len(batches) == 2 and batches[0]["heatmaps"].shape == (3, 16, 16, 4)


def test_decode_is_finite_on_untrained_outputs():
    """Garbage in (noise, flat, negative maps): finite points within half a heatmap pixel of the crop."""
    rng = np.random.default_rng(5)
    for refine in ("dark", "quarter", "none"):
        codec = HeatmapCodec(4, (64, 64), stride=2, refine=refine)
        for hm in (rng.normal(size=(2, 32, 32, 4)), np.zeros((2, 32, 32, 4)), -np.abs(rng.normal(size=(2, 32, 32, 4)))):
            out = codec({"heatmaps": hm.astype(np.float32)})["landmarks"].numpy()
            assert np.all(np.isfinite(out)) and out.min() >= -1.0 and out.max() <= 65.0


# ------------------------------------------------------------------------------------------------ network
def _tiny_net(strategy="SD", size=64, filters=16, k=5):
    codec = HeatmapCodec(k, (size, size), stride=heatmap_stride(strategy), sigma=1.0)
    bb = MobileNetV2Backbone(0.25, input_shape=(size, size, 3), include_last_conv=True, last_conv_channels=16)
    return HeatmapNetwork(bb, codec, strategy, filters)


@pytest.mark.parametrize("strategy,hm_size,channels_before_head",
                         [("D", 4, 16), ("S", 4, 4), ("SD", 8, 16), ("DS", 8, 4), ("SSDD", 32, 16)])
def test_strategy_shapes(strategy, hm_size, channels_before_head):
    net = _tiny_net(strategy)
    out = net(np.zeros((2, 64, 64, 3), np.float32))
    assert list(out) == ["heatmaps"] and out["heatmaps"].shape == (2, hm_size, hm_size, 5)
    assert net.get_layer("heatmap_conv").kernel.shape == (1, 1, channels_before_head, 5)
    # D blocks are SubPixelConv2DTranspose: a Conv2DTranspose (same weights and config) lowered for the GPU delegate
    kinds = [type(net.get_layer(f"up{i}_{'deconv' if b == 'D' else 'conv'}")).__name__ for i, b in enumerate(strategy)]
    assert kinds == ["SubPixelConv2DTranspose" if b == "D" else "Conv2D" for b in strategy]
    assert all(isinstance(net.get_layer(f"up{i}_deconv"), keras.layers.Conv2DTranspose) for i, b in enumerate(strategy) if b == "D")
    assert net.get_layer("up0_deconv" if strategy[0] == "D" else "up0_conv").kernel.shape[:2] == ((4, 4) if strategy[0] == "D" else (3, 3))


def test_strategy_and_argument_errors():
    assert parse_strategy("sdd") == "SDD" and heatmap_stride("SDD") == 4 and heatmap_stride("DDDD") == 2
    for bad in ("", "SXD", "DDDDDD", 3):
        with pytest.raises(InvalidArgumentError):
            parse_strategy(bad)
    codec = HeatmapCodec(5, (64, 64), stride=2)
    bb = MobileNetV2Backbone(0.25, input_shape=(64, 64, 3))
    with pytest.raises(InvalidArgumentError, match="stride 8, but the codec has stride 2"):
        HeatmapNetwork(bb, codec, "DD", 16)
    with pytest.raises(InvalidArgumentError, match="divisible by 4"):
        HeatmapNetwork(bb, codec, "SSDD", 18)
    spec = get_spec("heatmap_mnv2_025")
    with pytest.raises(InvalidArgumentError, match="unknown builder arguments"):
        get_family("heatmap").build_network(spec, deconv_kernel=3)
    with pytest.raises(InvalidArgumentError, match="heatmap backbone must be one of"):
        get_family("heatmap").build_network(spec, backbone="vgg16")


def test_paper_backbone_features():
    """MobileNetV2's final 1x1 conv is kept at 1280·width channels (320 at width 0.25): Table 3 needs it."""
    assert paper_backbone_args("mobilenetv2", {"width_multiplier": 0.25}) == {
        "width_multiplier": 0.25, "include_last_conv": True, "last_conv_channels": 320}
    assert paper_backbone_args("mobilenetv2", {})["last_conv_channels"] == 1280
    assert paper_backbone_args("mobilenetv2", {"include_last_conv": False}) == {"include_last_conv": False}
    assert paper_backbone_args("resnet18", {"width_multiplier": 0.5}) == {"width_multiplier": 0.5}
    net = build_network(get_spec("heatmap_mnv2_025"))
    assert net.backbone.output.shape[1:] == (6, 6, 320)
    assert net.output["heatmaps"].shape[1:] == (96, 96, 106)
    assert net.codec.stride == 2 and net.codec.refine == "dark"


def test_keras_round_trip(tmp_path):
    net = _tiny_net("SD")
    x = np.random.default_rng(6).normal(size=(2, 64, 64, 3)).astype(np.float32)
    back = check_keras_round_trip(net, x, tmp_path / "heatmap.keras", atol=1e-4)
    assert isinstance(back, HeatmapNetwork) and back.strategy == "SD" and back.filters == 16
    assert back.codec.get_config() == net.codec.get_config()


# ------------------------------------------------------------------------------------------------ loss
def test_heatmap_loss_values():
    codec = HeatmapCodec(3, (32, 32), stride=2, sigma=1.0)
    t = codec.encode(np.array([[[8.0, 8.0], [16.0, 20.0], [24.0, 4.0]]] * 2, np.float32))
    t = {k: v.numpy() for k, v in t.items()}
    loss = HeatmapLoss()
    assert float(loss(t, {"heatmaps": t["heatmaps"]})) == 0.0
    zeros = {"heatmaps": np.zeros_like(t["heatmaps"])}
    per_point = (t["heatmaps"] ** 2).mean(axis=(1, 2))  # (B, K)
    assert float(loss(t, zeros)) == pytest.approx(per_point.mean(), rel=1e-5)
    t2 = dict(t, visible=np.array([[1.0, 0.0, 0.0]] * 2, np.float32))
    assert float(loss(t2, zeros)) == pytest.approx(per_point[:, 0].mean() / 3, rel=1e-5)
    assert float(HeatmapLoss(scale=2.0)(t, zeros)) == pytest.approx(4 * per_point.mean(), rel=1e-5)
    assert keras.losses.deserialize(keras.losses.serialize(HeatmapLoss(scale=3.0))).scale == 3.0


# ------------------------------------------------------------------------------------------------ zoo + Table 3
TABLE3 = ["SSSS", "DSSS", "DDSS", "DSSD", "DSDS", "DDDS", "SSSD", "SDSD", "SSDD", "SDDD", "DDDD"]


def _same_order(ours, paper):
    """Every pair the paper orders strictly is ordered the same way by ours (paper ties are free)."""
    names = list(paper)
    return [(a, b) for a in names for b in names if paper[a] < paper[b] and not ours[a] < ours[b]]


@pytest.mark.slow
def test_table3_compute_and_size_match_the_paper():
    """Every strategy of Table 3 (MobileNetV2-0.25, 192x192, 106 points, 256 filters) against the paper's
    GFLOPS (which are multiply-adds: lmkzoo.flops counts MACs) and float32 size (MiB): same orderings,
    each value within 30%."""
    from lmkzoo.flops import count_macs

    ours_g, ours_s, paper_g, paper_s = {}, {}, {}, {}
    for strategy in TABLE3:
        spec = get_spec(f"heatmap_mnv2_025.{strategy.lower()}")
        assert spec.builder["strategy"] == strategy and spec.scheme == "jd106" and spec.input_size == (192, 192)
        report = count_macs(build_network(spec))
        ours_g[strategy], ours_s[strategy] = report.gmacs, report.size_mb
        paper_g[strategy], paper_s[strategy] = spec.paper_metrics["gflops"], spec.paper_metrics["size_mb"]
    for s in TABLE3:
        assert abs(ours_g[s] / paper_g[s] - 1) < 0.30, (s, ours_g[s], paper_g[s])
        assert abs(ours_s[s] / paper_s[s] - 1) < 0.30, (s, ours_s[s], paper_s[s])
    assert _same_order(ours_g, paper_g) == []
    assert _same_order(ours_s, paper_s) == []
    # the MACs follow the paper closely (within 2% on every row); DDDD is the worked check
    assert max(abs(ours_g[s] / paper_g[s] - 1) for s in TABLE3) < 0.02
    assert ours_g["DDDD"] == pytest.approx(3.49, abs=0.01) and ours_s["DDDD"] == pytest.approx(17.76, abs=0.05)


# Table 6 (final SDD models, 192x192, 106 points, 128 filters): GFLOPS (MACs) and float32 size (MiB).
# Per-model tolerances, each with its reason (measured: ours vs the paper):
# * ResNet-18: 1.545 vs 1.13 GMACs (+37%), 46.2 vs 45.6 MiB. The torchvision ResNet-18 backbone alone costs
#   ~1.33 GMACs at 192x192 (1.82 at 224), already above the paper's total, so the paper's GFLOPS cannot follow
#   from the stated architecture; the size (which the backbone dominates) agrees within 2%.
# * MobileNetV2-1.0: 0.465 vs 0.43 GMACs (+8%), 15.55 vs 12.16 MiB (+28%). The S block's 3x3 conv reads the
#   1280-channel final conv (1.47 M parameters, 5.6 MiB); the paper does not say how its 1.0 model feeds the
#   head, and the 3.4 MiB gap is about that conv's size.
# * ResNet-50: 3.279 vs 3.23 GMACs (+1.5%), 100.2 vs 94.1 MiB (+6.5%): within the Table 3 agreement.
TABLE6_TOLERANCE = {  # arch: (relative GMACs tolerance, relative size tolerance)
    "heatmap_mnv2_sdd": (0.15, 0.35),
    "heatmap_r18_sdd": (0.45, 0.05),
    "heatmap_r50_sdd": (0.05, 0.10),
}


@pytest.mark.slow
def test_table6_compute_and_size_of_the_final_models():
    """The three final models (zoo jd106 tags) against Table 6: GMACs and MiB within the per-model
    tolerances of TABLE6_TOLERANCE (reasons beside it); the ordering of both columns matches the paper."""
    from lmkzoo.flops import count_macs

    ours_g, ours_s, paper_g, paper_s = {}, {}, {}, {}
    for arch, (tol_g, tol_s) in TABLE6_TOLERANCE.items():
        spec = get_spec(f"{arch}.jd106")
        assert spec.builder["strategy"] == "SDD" and spec.builder["filters"] == 128 and spec.input_size == (192, 192)
        net = build_network(spec)
        assert net.output["heatmaps"].shape[1:] == (48, 48, 106)
        report = count_macs(net)
        ours_g[arch], ours_s[arch] = report.gmacs, report.size_mb
        paper_g[arch], paper_s[arch] = spec.paper_metrics["gflops"], spec.paper_metrics["size_mb"]
        print(f"{arch}: {ours_g[arch]:.3f} GMACs (paper {paper_g[arch]:.2f}), "
              f"{ours_s[arch]:.2f} MiB (paper {paper_s[arch]:.2f})")
        assert abs(ours_g[arch] / paper_g[arch] - 1) < tol_g, (arch, ours_g[arch], paper_g[arch])
        assert abs(ours_s[arch] / paper_s[arch] - 1) < tol_s, (arch, ours_s[arch], paper_s[arch])
        if arch == "heatmap_r18_sdd":  # the documented reason for its tolerance: the backbone alone exceeds 1.13
            backbone_g = count_macs(net.backbone).gmacs
            print(f"  resnet18 backbone alone at 192 px: {backbone_g:.3f} GMACs")
            assert paper_g[arch] < backbone_g < ours_g[arch]
    assert _same_order(ours_g, paper_g) == [] and _same_order(ours_s, paper_s) == []


def test_mobilenetv2_width_half_features_and_heatmaps():
    """MobileNetV2 width 0.5 (the paper's middle width): final 1x1 conv at make_divisible(1280 · 0.5) = 640
    channels, 6x6 at 192 px, and the baseline DDDD head still gives 106 heatmaps at 96x96."""
    spec = get_spec("heatmap_mnv2_025")
    net = build_network(spec, backbone_args={"width_multiplier": 0.5})
    assert net.backbone.output.shape[1:] == (6, 6, 640)
    assert net.output["heatmaps"].shape[1:] == (96, 96, 106)
    assert net.get_layer("up0_deconv").kernel.shape == (4, 4, 256, 640)  # Conv2DTranspose: (kh, kw, out, in)


def test_non_numeric_arguments_raise_typed_errors():
    codec = HeatmapCodec(5, (64, 64), stride=2)
    bb = MobileNetV2Backbone(0.25, input_shape=(64, 64, 3), include_last_conv=True, last_conv_channels=16)
    for bad in ("abc", None, 6.5, True):
        with pytest.raises(InvalidArgumentError, match=f"filters must be an integer >= 4; got {bad!r}"):
            HeatmapNetwork(bb, codec, "DDDDD", bad)
    for bad in ("x", None, float("nan"), -1.0):
        with pytest.raises(InvalidArgumentError, match=r"sigma must be .*; got " + repr(bad).replace("(", r"\(")):
            HeatmapCodec(5, (64, 64), stride=2, sigma=bad)
    with pytest.raises(InvalidArgumentError, match="stride must be a positive integer; got 'two'"):
        HeatmapCodec(5, (64, 64), stride="two")


def test_zoo_entries():
    names = lmkzoo.list_models("heatmap*")
    for arch in ("heatmap_mnv2_sdd", "heatmap_r18_sdd", "heatmap_r50_sdd"):
        spec = get_spec(arch)
        assert spec.scheme == "jd106" and spec.family == "heatmap" and spec.builder["strategy"] == "SDD"
        assert spec.builder["filters"] == 128
        assert {"jd_test_auc", "jd_test_nme", "jd2_val_auc", "gflops", "size_mb"} <= set(spec.paper_metrics)
        assert spec.crop["policy"] == "five_point" and spec.input_size == (192, 192)
        assert spec.recipe["augment"] == "earp" and spec.recipe["schedule"]["boundaries_epochs"] == [20, 30]
    assert {f"heatmap_mnv2_025.{s.lower()}" for s in TABLE3} <= set(names)
    assert get_spec("heatmap_mnv2_025").name == "heatmap_mnv2_025.dddd"
    assert get_spec("heatmap_mnv2_025.dddd").paper_metrics["jd_test_auc"] == 82.20
    from lmkzoo.data.presets import get_preset

    earp = get_preset("earp")
    assert earp["pca_lighting"]["sigma"] == 0.05 and earp["rotate"]["max_deg"] == 15.0
    assert earp["color"]["brightness"] == earp["color"]["contrast"] == earp["color"]["saturation"] == 0.4
    assert "scale" not in earp and "translate" not in earp and "flip" in earp and "erase" in earp


def test_cli_info_flops(capsys):
    from lmkzoo.cli import main

    assert main(["info", "heatmap_mnv2_025.ssss", "--flops"]) == 0
    out = capsys.readouterr().out
    assert "GMACs" in out and "MiB as float32" in out and "paper: 0.56 GFLOPS (MACs), 6.12 MB" in out
    assert "0.559 GMACs" in out


# ------------------------------------------------------------------------------------------------ TFLite
def test_tflite_lowering_pixel_shuffle_and_gpu_friendly_decode():
    """The serving graph (normalise + network + DARK decode) converts to builtin TFLite ops only: pixel
    shuffle is DEPTH_TO_SPACE, and none of the ops the GPU delegate rejects appears; outputs match Keras."""
    from lmkzoo.export.serving import build_serving_model

    net = _tiny_net("SD")
    serving = build_serving_model(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    fn = tf.function(lambda x: serving(x), input_signature=[tf.TensorSpec([1, 64, 64, 3], tf.uint8)])
    content = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()]).convert()
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=content)
    ops_used = {d["op_name"] for d in interp._get_ops_details()}
    # deconvolutions lower as 2x2 convs + DEPTH_TO_SPACE (SubPixelConv2DTranspose), not TRANSPOSE_CONV
    assert "DEPTH_TO_SPACE" in ops_used and "CONV_2D" in ops_used and "TRANSPOSE_CONV" not in ops_used
    banned = {"GATHER", "GATHER_ND", "STRIDED_SLICE", "ONE_HOT", "UNSORTED_SEGMENT_SUM", "ARG_MAX", "SELECT",
              "SELECT_V2", "FlexBitwiseAnd", "CUSTOM"}
    assert not ops_used & banned, ops_used & banned
    interp.allocate_tensors()
    x = np.random.default_rng(7).integers(0, 256, (1, 64, 64, 3)).astype(np.uint8)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    got = {tuple(d["shape"]): interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    want = serving(x)
    assert np.allclose(got[(1, 5, 2)], want["landmarks"].numpy(), atol=1e-3)
    assert np.allclose(got[(1, 5)], want["scores"].numpy(), atol=1e-4)


# ------------------------------------------------------------------------------------------------ load + predict
def test_load_and_predict_with_five_points_and_flip_test(shared_data):
    lm = lmkzoo.load("heatmap_mnv2_sdd", weights=None)
    assert lm.spec.family == "heatmap" and lm.network.output["heatmaps"].shape[1:] == (48, 48, 106)
    check_five_point_predict_and_flip_test(lm, shared_data)


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.slow
def test_tiny_model_learns_on_lfw_teacher_labels(shared_data):
    """A tiny heatmap model (ResNet-18 at width 0.25, SDD head with 64 filters, 96 px 5-point crops, 68
    points) trains 8 epochs of 32 steps with the `earp` recipe on LFW teacher labels; on held-out people its NME falls
    from a random network's (~90%) to below a quarter of it and below the mean-shape predictor's."""
    from lmkzoo import metrics
    from lmkzoo.data.pipeline import make_dataset
    from lmkzoo.training.run import evaluate_network

    train_rows, val_rows = person_split(shared_data, 512, 64)
    train_src, train_pts = example_dataset(shared_data, train_rows)
    val_src, val_pts = example_dataset(shared_data, val_rows)
    base = get_spec("heatmap_mnv2_sdd.300w")
    spec = dataclasses.replace(base, input={**base.input, "size": [96, 96]})
    family = get_family("heatmap")
    keras.utils.set_random_seed(0)
    net = family.build_network(spec, backbone="resnet18", backbone_args={"width_multiplier": 0.25}, strategy="SDD",
                               filters=64, sigma=1.5)
    common = dict(crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean, std=spec.std)
    epochs = 8  # 512 faces / batch 16 = 32 steps per epoch
    train_ds = make_dataset(train_src, codec=net.codec, training=True, batch_size=16, augment=family.augment_preset,
                            epochs=epochs, seed=0, shuffle_buffer=512, **common)
    val_ds = make_dataset(val_src, training=False, batch_size=32, **common)
    before = float(np.mean(evaluate_network(net, val_ds, scheme="ibug68")[0]))
    net.compile(optimizer=keras.optimizers.Adam(3e-3), loss=family.default_loss(spec, net), jit_compile=False)
    history = net.fit(train_ds, epochs=1, steps_per_epoch=epochs * 32, verbose=0)
    after = float(np.mean(evaluate_network(net, val_ds, scheme="ibug68")[0]))

    # the mean shape of the training crops, placed with each validation face's own five points
    sch = schemes.get("ibug68")
    kw = dict(face_scale=spec.crop["template_scale"], shift_y=spec.crop["template_shift"])
    mean_crop = np.mean([geometry.apply_affine(p, geometry.align_five_points(sch.five_points(p), 96, **kw)) for p in train_pts], 0)
    mean_pred = np.stack([geometry.apply_affine(mean_crop, geometry.invert_affine(geometry.align_five_points(sch.five_points(p), 96, **kw)))
                          for p in val_pts])
    mean_shape = float(np.mean(metrics.nme(mean_pred, val_pts, scheme="ibug68")))
    print(f"\n  NME before {before:.4f}, after {after:.4f}, mean shape {mean_shape:.4f}, loss {history.history['loss'][-1]:.5f}")
    assert before > 0.3
    assert after < 0.25 * before
    assert after < 0.9 * mean_shape


@pytest.mark.slow
def test_train_entry_point_and_keras_file_round_trip(shared_data, tmp_path):
    """``lmkzoo.training.train.train`` runs the family's recipe (earp preset, heatmap loss, step schedule, 5-point
    crops, evaluation callback) and its ``final.keras`` loads back through ``lmkzoo.load(path)``."""
    from lmkzoo.training.train import train

    images, pts = load_faces(shared_data, teacher_rows(shared_data)[:24])
    train_src, val_src = examples(images[:16], pts[:16]), examples(images[16:], pts[16:])
    # (width 0.125 at 192 px crashes TF 2.21's oneDNN CPU kernels in training: memory corruption in the 8-channel stem)
    overrides = {"backbone": "resnet18", "backbone_args": {"width_multiplier": 0.25}, "filters": 16}
    # the tag starts from ImageNet MobileNetV2 weights; a ResNet backbone here starts from random weights
    net, hist = train("heatmap_mnv2_sdd.300w", data=(train_src, val_src), out_dir=tmp_path, epochs=1, batch_size=8,
                      builder_overrides=overrides, backbone_init="none", verbose=0)
    assert np.isfinite(hist["loss"][0]) and "val_nme" in hist
    assert json.loads((tmp_path / "config.json").read_text())["backbone_init"] is None  # backbone_init="none"
    assert net.codec.num_points == 68 and net.strategy == "SDD"
    lm = lmkzoo.load(tmp_path / "final.keras")
    assert lm.spec.name == "heatmap_mnv2_sdd.300w" and lm.spec.crop["policy"] == "five_point"
    face = lm.predict(images[20], five_points=[schemes.get("ibug68").five_points(pts[20])])[0]
    direct = net.decode(net(keras.ops.convert_to_tensor(
        (geometry.warp_affine(images[20], geometry.align_five_points(schemes.get("ibug68").five_points(pts[20]), 192,
                                                                    face_scale=0.8, shift_y=-0.16), 192)[None] / 255.0
         - np.array(lm.spec.mean)) / np.array(lm.spec.std), "float32")))
    m = geometry.align_five_points(schemes.get("ibug68").five_points(pts[20]), 192, face_scale=0.8, shift_y=-0.16)
    expected = geometry.apply_affine(direct["landmarks"].numpy()[0].astype(np.float64), geometry.invert_affine(m))
    assert np.allclose(face.points, expected, atol=0.05)
