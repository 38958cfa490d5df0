"""LOTR family (Watchareeruetai et al. 2021): Table 3 parameter counts, DETR-style attention (positional encoding
on queries and keys only), initialisation, codec, losses, zoo entries and recipe, ``.keras`` round trip, load +
predict (flip test), the LiteRT GPU accelerator, and a tiny LOTR trained on the shared LFW faces."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from lfw_faces import check_five_point_predict_and_flip_test, example_dataset, person_split

import lmkzoo
from lmkzoo.codecs import RegressionCodec
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError
from lmkzoo.families.base import get_family
from lmkzoo.inference.landmarker import Landmarker
from lmkzoo.inference.loader import build_network
from lmkzoo.losses import L1, SmoothWing, Wing
from lmkzoo.losses.coordinate_loss import CoordinateLoss
from lmkzoo.models.lotr import (
    CNNFFNNetwork,
    LearnedEmbedding,
    LOTRNetwork,
    PositionalMultiHeadAttention,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
    lotr_backbone_args,
)
from lmkzoo.models.lotr.transformer import PositionalEncoding2D
from lmkzoo.registry import get_spec
from lmkzoo.testing.round_trip import check_codec_round_trip, check_config_round_trip, check_keras_round_trip

#: Table 3 "Params (x10^6)"
TABLE3 = {"lotr_m": 2.81, "lotr_m_plus": 3.71, "lotr_r_plus": 25.21, "cnn_ffn_m": 3.89, "cnn_ffn_r": 25.24}
#: tiny builder overrides (64 px crops): MobileNetV2-0.25, two deconvolutions (8x8 tokens), D = 16
TINY = {"backbone_args": {"width_multiplier": 0.25}, "reduce_channels": 32, "upsample_filters": [16, 16], "dim": 16,
        "num_heads": 2, "ffn_dim": 32, "head_units": [64, 64]}
TINY_FFN = {"backbone_args": {"width_multiplier": 0.25}, "head": "ffn", "reduce_channels": 8, "head_units": [32, 32]}


def _tiny_spec(arch="lotr_m", size=64, scheme="jd106", **tag):
    base = get_spec(arch if "." in arch else f"{arch}.jd106")
    return dataclasses.replace(base, scheme=scheme, input={**base.input, "size": [size, size]}, **tag)


def _tiny_net(head="transformer", size=64, scheme="jd106", **builder):
    spec = _tiny_spec(size=size, scheme=scheme)
    keras.utils.set_random_seed(0)
    net = get_family("lotr").build_network(spec, **(TINY if head == "transformer" else TINY_FFN), **builder)
    net.zoo_spec = spec.to_dict()
    return spec, net


# ------------------------------------------------------------------------------------------------ Table 3
@pytest.fixture(scope="module")
def paper_networks():
    return {}


def _paper_network(cache, arch):
    if arch not in cache:
        cache[arch] = build_network(get_spec(arch))
    return cache[arch]


def test_parameter_counts_match_table3(paper_networks):
    """Every zoo model within 10% of Table 3 (all weights counted, BatchNorm statistics included, as MXNet does);
    with D = 64, 4 heads and FFN 128 they land within 0.5%."""
    rows = []
    for arch, paper in TABLE3.items():
        spec = get_spec(arch)
        assert spec.paper_metrics["params_m"] == paper
        ours = _paper_network(paper_networks, arch).count_params() / 1e6
        rows.append((arch, ours, paper))
    print("\n  model         ours (M)   Table 3 (M)   ratio")
    for arch, ours, paper in rows:
        print(f"  {arch:<12} {ours:9.3f} {paper:12.2f} {ours / paper:9.4f}")
    for arch, ours, paper in rows:
        assert abs(ours / paper - 1) < 0.10, (arch, ours, paper)
        assert abs(ours / paper - 1) < 0.005, (arch, ours, paper)


def test_paper_architectures(paper_networks):
    """Table 1: token grids, channels, Transformer depth, the 512-512-2 head; §4.6: the flattened 6x6x64 FFN input."""
    m = _paper_network(paper_networks, "lotr_m")
    assert isinstance(m, LOTRNetwork) and m.backbone.output.shape[1:] == (6, 6, 1280)
    assert m.token_grid == (6, 6) and m.get_layer("tokens").output.shape[1:] == (36, 64)
    assert (m.dim, m.num_heads, m.ffn_dim, m.num_encoder_layers, m.num_decoder_layers) == (64, 4, 128, 2, 2)
    assert m.output["coordinates"].shape[1:] == (106, 2) and m.codec.input_size == (192, 192)
    assert [m.get_layer(f"head_dense{i}").units for i in range(2)] == [512, 512] and m.get_layer("head_out").units == 2
    assert m.get_layer("head_out").activation.__name__ == "linear"
    plus = _paper_network(paper_networks, "lotr_m_plus")
    assert plus.token_grid == (24, 24) and plus.get_layer("reduce_conv").filters == 256
    assert [plus.get_layer(f"up{i}_deconv").filters for i in range(2)] == [128, 64]
    assert plus.get_layer("up0_deconv").kernel.shape[:2] == (4, 4)
    r = _paper_network(paper_networks, "lotr_r_plus")
    assert r.backbone.output.shape[1:] == (6, 6, 2048) and r.token_grid == (24, 24)
    ffn = build_network(get_spec("cnn_ffn_m"))
    assert isinstance(ffn, CNNFFNNetwork) and ffn.get_layer("flatten").output.shape[1:] == (6 * 6 * 64,)
    assert ffn.get_layer("ffn_out").units == 212 and ffn.output["coordinates"].shape[1:] == (106, 2)
    assert lotr_backbone_args("mobilenetv2") == {"include_last_conv": True, "last_conv_channels": 1280}
    assert lotr_backbone_args("resnet50", {}) == {}


def test_initialisation(paper_networks):
    """§4.3: landmark queries N(0, 1e-4²), positional encoding standard normal, He initialisation elsewhere."""
    net = _paper_network(paper_networks, "lotr_m")
    queries = net.get_layer("landmark_queries").embeddings.numpy()
    assert queries.shape == (106, 64)
    assert abs(queries.std() / 1e-4 - 1) < 0.05 and abs(queries.mean()) < 1e-5
    pe = net.get_layer("positional_encoding")
    table = np.concatenate([pe.row_embeddings.numpy().ravel(), pe.column_embeddings.numpy().ravel()])
    assert pe.row_embeddings.shape == (6, 32) and pe.column_embeddings.shape == (6, 32)
    assert abs(table.std() - 1) < 0.15
    for name in ("head_dense1", "token_projection", "reduce_conv"):
        kernel = net.get_layer(name).kernel.numpy()
        fan_in = int(np.prod(kernel.shape[:-1]))
        assert abs(kernel.std() / np.sqrt(2.0 / fan_in) - 1) < 0.1, name  # he_normal
    enc = net.get_layer("encoder0")
    q = enc.self_attention.query_dense.kernel.numpy()
    assert abs(q.std() / np.sqrt(2.0 / 64) - 1) < 0.1 and np.all(enc.self_attention.query_dense.bias.numpy() == 0)


# ------------------------------------------------------------------------------------------------ attention
def _attention_reference(layer, query, key, value, query_pos, key_pos):
    """numpy multi-head attention with the positional encodings added to the query and key inputs only."""
    def proj(dense, x):
        return x @ dense.kernel.numpy() + dense.bias.numpy()

    def heads(x):
        b, n, _ = x.shape
        return x.reshape(b, n, layer.num_heads, layer.head_dim).transpose(0, 2, 1, 3)

    q = heads(proj(layer.query_dense, query + query_pos))
    k = heads(proj(layer.key_dense, key + key_pos))
    v = heads(proj(layer.value_dense, value))
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(layer.head_dim)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    ctx = (w @ v).transpose(0, 2, 1, 3).reshape(query.shape[0], query.shape[1], layer.dim)
    return proj(layer.output_dense, ctx)


_ONE_KEY = "ignore:You are using a softmax over axis -1:UserWarning"  # single-key attention is the point of the test


@pytest.mark.filterwarnings(_ONE_KEY)
def test_positional_encoding_goes_to_queries_and_keys_only():
    rng = np.random.default_rng(0)
    layer = PositionalMultiHeadAttention(8, 2)
    q, k, v = (rng.normal(size=s).astype(np.float32) for s in [(2, 3, 8), (2, 5, 8), (2, 5, 8)])
    qp, kp = rng.normal(size=(1, 3, 8)).astype(np.float32), rng.normal(size=(1, 5, 8)).astype(np.float32)
    out = layer(q, k, v, query_pos=qp, key_pos=kp).numpy()
    assert np.allclose(out, _attention_reference(layer, q, k, v, qp, kp), atol=1e-5)
    # the encodings move the attention weights ...
    moved = layer.attention_weights(q, k, key_pos=kp).numpy()
    assert not np.allclose(moved, layer.attention_weights(q, k).numpy(), atol=1e-3)
    # ... but never enter the values: with a single key every weight is 1, so the output ignores both encodings
    k1, v1 = k[:, :1], v[:, :1]
    base = layer(q, k1, v1).numpy()
    assert np.allclose(layer(q, k1, v1, query_pos=qp, key_pos=kp[:, :1]).numpy(), base, atol=1e-5)
    assert not np.allclose(layer(q, k1, v1 + 1.0).numpy(), base, atol=1e-3)
    # adding the encoding to the values instead would change that output
    assert not np.allclose(layer(q, k1, v1 + kp[:, :1]).numpy(), base, atol=1e-3)


@pytest.mark.filterwarnings(_ONE_KEY)
def test_encoder_and_decoder_layers_route_the_encoding():
    """Encoder: MHSA(q = k = x + pos, v = x); decoder: MHCA keys = memory + pos, values = memory."""
    rng = np.random.default_rng(1)
    enc = TransformerEncoderLayer(8, 2, 16, dropout=0.1)
    x, pos = rng.normal(size=(2, 6, 8)).astype(np.float32), rng.normal(size=(1, 6, 8)).astype(np.float32)
    out = enc(x, pos=pos, training=False).numpy()
    att = enc.self_attention
    h = enc.norms[0](x + _attention_reference(att, x, x, x, pos, pos)).numpy()
    expected = enc.norms[1](h + enc.ffn2(enc.ffn1(h))).numpy()
    assert np.allclose(out, expected, atol=1e-4)
    # decoder: with a single memory token the cross-attention output cannot depend on the memory's encoding
    dec = TransformerDecoderLayer(8, 2, 16, dropout=0.1)
    y, mem = rng.normal(size=(2, 4, 8)).astype(np.float32), rng.normal(size=(2, 1, 8)).astype(np.float32)
    a = dec(y, mem, memory_pos=rng.normal(size=(1, 1, 8)).astype(np.float32), training=False).numpy()
    assert np.allclose(a, dec(y, mem, training=False).numpy(), atol=1e-5)
    assert not np.allclose(a, dec(y, mem + 1.0, training=False).numpy(), atol=1e-3)
    # dropout is active in training only
    assert not np.allclose(dec(y, mem, training=True).numpy(), a, atol=1e-4)
    for layer in (enc, dec, PositionalMultiHeadAttention(8, 4, 0.1)):
        check_config_round_trip(layer)
    with pytest.raises(InvalidArgumentError, match="divisor of dim"):
        PositionalMultiHeadAttention(10, 4)


def test_positional_encoding_2d_and_queries():
    pe = PositionalEncoding2D(3, 4, 6)
    table = pe(np.zeros((2, 12, 6), np.float32)).numpy()[0]  # (12, 6), row-major tokens
    row, col = pe.row_embeddings.numpy(), pe.column_embeddings.numpy()
    for y in range(3):
        for x in range(4):
            assert np.allclose(table[y * 4 + x], np.concatenate([col[x], row[y]]))
    q = LearnedEmbedding(5, 4, stddev=1e-4, batch_broadcast=True)
    out = q(np.ones((3, 7, 4), np.float32)).numpy()
    assert out.shape == (3, 5, 4) and np.allclose(out, q.embeddings.numpy()[None])
    with pytest.raises(InvalidArgumentError, match="even"):
        PositionalEncoding2D(2, 2, 5)


# ------------------------------------------------------------------------------------------------ codec
def test_codec_encode_decode_identity():
    codec = RegressionCodec(5, (96, 64))
    rng = np.random.default_rng(2)
    pts = np.stack([rng.uniform(-10, 106, (3, 5)), rng.uniform(-10, 74, (3, 5))], -1).astype(np.float32)
    t, _, out = check_codec_round_trip(codec, pts, atol=1e-4)
    assert t["coordinates"].shape == (3, 5, 2) and t["visible"].shape == (3, 5)
    assert np.allclose(t["coordinates"].numpy(), pts / np.array([96, 64], np.float32), atol=1e-7)
    assert np.all(t["visible"].numpy() == 1.0)  # a regressed point outside the crop is still a target
    assert out["scores"].shape == (3, 5) and np.all(out["scores"].numpy() == 1.0)
    assert np.allclose(codec.to_pixels(t["coordinates"].numpy()), pts, atol=1e-4)
    one = codec.encode(pts[0], np.array([1, 0, 1, 1, 0]))
    assert one["coordinates"].shape == (5, 2) and one["visible"].numpy().tolist() == [1, 0, 1, 1, 0]
    # corners of the crop: 0 and 1 (lmkzoo's corner convention)
    corners = np.array([[0, 0], [96, 64], [48, 32], [1, 1], [95, 63]], np.float32)
    assert np.allclose(codec.encode(corners)["coordinates"].numpy()[:3], [[0, 0], [1, 1], [0.5, 0.5]])
    ds = tf.data.Dataset.from_tensor_slices(pts).batch(2).map(lambda p: codec.encode(p))
    assert next(iter(ds))["coordinates"].shape == (2, 5, 2)
    with pytest.raises(ShapeMismatchError, match=r"\(\.\.\., 5, 2\)"):
        codec.encode(np.zeros((4, 2), np.float32))
    check_config_round_trip(codec)


# ------------------------------------------------------------------------------------------------ losses
def test_coordinate_loss_reads_the_codec_targets_and_masks_invisible_points():
    codec = RegressionCodec(3, (192, 192))
    pts = np.array([[[10.0, 20.0], [100.0, 50.0], [150.0, 170.0]]] * 2, np.float32)
    t = {k: v.numpy() for k, v in codec.encode(pts).items()}
    shifted = {"coordinates": t["coordinates"] + np.array([3.0, -4.0], np.float32) / 192}  # 3 and 4 px off
    loss = CoordinateLoss("l1", scale=(192, 192))
    assert float(loss(t, {"coordinates": t["coordinates"]})) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(t, shifted)) == pytest.approx(3 * 7.0, rel=1e-4)  # Eq. 5: summed over points and axes
    t2 = dict(t, visible=np.array([[1, 0, 0], [1, 1, 1]], np.float32))
    assert float(loss(t2, shifted)) == pytest.approx((7.0 + 21.0) / 2, rel=1e-4)
    assert float(CoordinateLoss("l1", scale=192, point_reduction="mean")(t, shifted)) == pytest.approx(7.0, rel=1e-4)
    sw = CoordinateLoss("smooth_wing", scale=(192, 192), t=0.01, w=10.0, epsilon=2.0)
    expected = 3 * float(np.sum(SmoothWing().elementwise(np.array([3.0, 4.0], np.float32))))
    assert float(sw(t, shifted)) == pytest.approx(expected, rel=1e-4)
    check_config_round_trip(sw, via=keras.losses)
    with pytest.raises(InvalidArgumentError, match="point_loss must be one of"):
        CoordinateLoss("huber")
    with pytest.raises(InvalidArgumentError, match="bad arguments"):
        CoordinateLoss("l1", t=0.01)


def test_recipe_losses_and_optimizer():
    """zoo recipes: smooth-Wing (t 0.01, w 10, ε 2, crop pixels); §4.7's tags switch the point loss; LAMB 1e-3 with
    x0.1 at epochs 50 and 75 of 100."""
    from lmkzoo.training.optimizers import Lamb, build_optimizer

    fam = get_family("lotr")
    net = _tiny_net()[1]
    spec = get_spec("lotr_m")
    loss = fam.default_loss(spec, net)
    assert isinstance(loss.point, SmoothWing) and (loss.point.t, loss.point.w, loss.point.epsilon) == (0.01, 10.0, 2.0)
    assert loss.scale == (64.0, 64.0)  # the network's crop size: differences in crop pixels
    kinds = {tag: type(fam.default_loss(get_spec(f"lotr_m.{tag}"), net).point).__name__
             for tag in ("jd106_l1", "jd106_l2", "jd106_smooth_l1", "jd106_wing")}
    assert kinds == {"jd106_l1": "L1", "jd106_l2": "L2", "jd106_smooth_l1": "SmoothL1", "jd106_wing": "Wing"}
    wing = fam.default_loss(get_spec("lotr_r_plus.jd106_wing"), net).point
    assert isinstance(wing, Wing) and (wing.w, wing.epsilon) == (10.0, 2.0)
    assert isinstance(fam.default_loss(get_spec("lotr_m.jd106_l1"), net).point, L1)
    bad = dataclasses.replace(spec, recipe={**spec.recipe, "loss": {"name": "heatmap_mse"}})
    with pytest.raises(InvalidArgumentError, match="loss is one of"):
        fam.default_loss(bad, net)
    opt = build_optimizer(spec.recipe, steps_per_epoch=10)
    assert isinstance(opt, Lamb) and opt.exclude_from_layer_adaptation == ("embeddings",)
    lr = opt._learning_rate  # the schedule
    assert [float(lr(s)) for s in (0, 499, 500, 749, 750, 999)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])


# ------------------------------------------------------------------------------------------------ zoo
def test_zoo_entries():
    names = lmkzoo.list_models("lotr*")
    assert {"lotr_m.jd106", "lotr_m_plus.jd106", "lotr_r_plus.jd106"} <= set(names)
    assert {"cnn_ffn_m.jd106", "cnn_ffn_r.jd106"} <= set(lmkzoo.list_models(family="lotr"))
    earp = get_spec("heatmap_mnv2_sdd")
    paper = {"lotr_m": (87.05, 1.03, 86.39), "lotr_m_plus": (87.21, 1.02, 86.56), "lotr_r_plus": (87.71, 0.98, 87.09)}
    for arch, (auc, nme, auc_no_flip) in paper.items():
        spec = get_spec(arch)
        assert spec.name == f"{arch}.jd106" and spec.family == "lotr" and spec.scheme == "jd106"
        assert spec.input_size == (192, 192) and spec.input == earp.input  # the same 5-point crops as Earp et al.
        assert spec.crop["policy"] == "five_point"
        r = spec.recipe
        assert r["epochs"] == 100 and r["batch_size"] == 32 and r["augment"] == "lotr"
        assert r["optimizer"] == {"name": "lamb", "learning_rate": 1e-3}
        assert r["schedule"] == {"name": "step", "boundaries_epochs": [50, 75], "factor": 0.1}
        loss = r["loss"]
        assert loss["name"] == "smooth_wing" and (loss["t"], loss["w"], loss["epsilon"]) == (0.01, 10.0, 2.0)
        b = spec.builder
        assert (b["dim"], b["num_heads"], b["ffn_dim"]) == (64, 4, 128)
        assert "D = 64, 4 heads, FFN width 128" in spec.notes
        pm = spec.paper_metrics
        assert (pm["jd_test_auc"], pm["jd_test_nme"], pm["jd_test_auc_no_flip"]) == (auc, nme, auc_no_flip)
        assert pm["jd_test_fr"] == 0.0
    assert get_spec("lotr_m.jd106_layers1").builder["num_encoder_layers"] == 1
    assert get_spec("lotr_r_plus.jd106_wing").paper_metrics["jd_test_auc"] == 87.68
    assert get_spec("cnn_ffn_r").builder["head"] == "ffn" and get_spec("cnn_ffn_r").paper_metrics["jd_test_auc"] == 86.91
    from lmkzoo.data.presets import get_preset

    assert get_preset("lotr") == get_preset("earp")
    assert get_family("lotr").augment_preset == "lotr"
    with pytest.raises(InvalidArgumentError, match="unknown builder arguments"):
        get_family("lotr").build_network(get_spec("lotr_m"), hidden=3)
    with pytest.raises(InvalidArgumentError, match="head must be one of"):
        get_family("lotr").build_network(_tiny_spec(), **{**TINY, "head": "cnn"})


# ------------------------------------------------------------------------------------------------ saving
@pytest.mark.parametrize("head", ["transformer", "ffn"])
def test_keras_round_trip(head, tmp_path):
    # the transformer in lotr_m.300w's layout (the queries also in every decoder attention, no dropout before the head)
    spec, net = _tiny_net(head, **({"query_pos": True, "head_dropout": 0.0} if head == "transformer" else {}))
    path = tmp_path / f"lotr_{head}.keras"
    x = np.random.default_rng(3).normal(size=(2, 64, 64, 3)).astype(np.float32)
    back = check_keras_round_trip(net, x, path, outputs=lambda m, x: m(x, training=False), keys=("coordinates",),
                                  exact=True)
    assert back.codec.get_config() == net.codec.get_config()
    if head == "ffn":
        return
    assert back.get_config()["head_dropout"] == 0.0 and back.get_layer("head_dropout").rate == 0.0
    # through the public loader: the spec travels inside the file
    lm = lmkzoo.load(path)
    assert lm.spec.name == spec.name and lm.spec.family == "lotr"
    crops = np.random.default_rng(4).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    ref = Landmarker(spec, net).runner(crops)
    assert np.array_equal(lm.runner(crops)["landmarks"], ref["landmarks"])


# ------------------------------------------------------------------------------------------------ predict
def test_load_and_predict_with_five_points_and_flip_test(shared_data):
    keras.utils.set_random_seed(0)
    lm = lmkzoo.load("lotr_m", weights=None)
    assert lm.spec.family == "lotr" and isinstance(lm.network, LOTRNetwork)
    face = check_five_point_predict_and_flip_test(lm, shared_data)
    assert np.all(face.scores == 1.0)


# ------------------------------------------------------------------------------------------------ export
def _non_degenerate(net, steps=20):
    """Make a randomly initialised network's activations and outputs informative: BatchNorm statistics from
    training-mode passes (a fresh MobileNetV2's features otherwise shrink to ~1e-11, leaving the Transformer
    nothing to compute) and landmark queries of unit scale (at N(0, 1e-4²) every query predicts nearly the
    same point). A GPU that computes the Transformer wrongly then moves the points visibly."""
    w, h = net.input_size
    x = np.random.default_rng(6).normal(size=(4, h, w, 3)).astype(np.float32)
    for _ in range(steps):
        net(x, training=True)
    if isinstance(net, LOTRNetwork):
        q = net.get_layer("landmark_queries").embeddings
        q.assign(np.random.default_rng(7).normal(size=q.shape).astype(np.float32))
    return net


@pytest.mark.slow
@pytest.mark.parametrize("head", ["transformer", "ffn"])
def test_serving_graph_runs_on_the_litert_gpu_accelerator(head, tmp_path):
    """Batch-1 TFLite export of the serving graph (normalise + network + decode): every op on LiteRT's GPU
    accelerator (no GATHER, no shrinking STRIDED_SLICE, no BROADCAST_TO), and GPU (fp32) and Keras agree on a
    network with informative activations (a token projection written as a Dense on the 4-D map compiled
    fine but gave points tens of pixels off on the GPU)."""
    from ai_edge_litert.interpreter import Interpreter

    from lmkzoo.export.gpu import check_gpu

    spec, net = _tiny_net(head)
    lm = Landmarker(spec, _non_degenerate(net))
    path = lm.export(tmp_path / "lotr_b1.tflite", batch_size=1)
    ops_used = {d["op_name"] for d in Interpreter(model_path=str(path))._get_ops_details()}
    assert not ops_used & {"GATHER", "GATHER_ND", "STRIDED_SLICE", "BROADCAST_TO", "SHAPE", "CUSTOM"}, ops_used
    if head == "transformer":
        assert {"BATCH_MATMUL", "SOFTMAX", "DEPTH_TO_SPACE"} <= ops_used
    crop = np.random.default_rng(5).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    report = check_gpu(path, inputs={"images": crop[None]})
    print(f"\n  {head}: {report.summary()} ({report.seconds:.0f} s)")
    assert report.fully_accelerated, report.summary() + "\n" + report.log[-2000:]
    ref = lm.runner(crop[None])
    assert ref["landmarks"][0].std(axis=0).min() > 2.0  # the points differ: the comparison means something
    assert np.abs(report.gpu_outputs["landmarks"] - ref["landmarks"]).max() < 1e-3 * 64
    assert np.allclose(report.gpu_outputs["scores"], 1.0)


def test_query_layouts_at_initialisation():
    """The paper's layout (queries N(0, 1e-4²), the decoder's input only) starts with every landmark at about the
    same spot; DETR's (queries N(0, 1) also added to each decoder attention's queries and keys) starts them apart.
    The option is in the config and the decoder layers see the queries as query_pos."""
    x = np.random.default_rng(0).uniform(-1, 1, (4, 64, 64, 3)).astype("float32")
    spreads = {}
    for name, builder in {"paper": {}, "detr": {"query_pos": True, "query_stddev": 1.0}}.items():
        net = _tiny_net(scheme="ibug68", **builder)[1]
        spreads[name] = float(np.asarray(net(x, training=False)["coordinates"]).std(axis=1).mean())
        assert net.get_config()["query_pos"] is bool(builder)
    assert spreads["detr"] > 20 * spreads["paper"], spreads
    with pytest.raises(InvalidArgumentError, match="query_pos must be true or false; got 'yes'"):
        _tiny_net(query_pos="yes")


def test_head_dropout_sets_the_dropout_before_the_head_only():
    """``head_dropout`` (lotr_m.300w: 0) changes the dropout before the prediction head and nothing else; unset, the
    head takes the Transformer's ``dropout`` as in the paper. Bad rates are named."""
    for builder, head_rate in (({}, 0.1), ({"head_dropout": 0.0}, 0.0), ({"head_dropout": 0.3}, 0.3)):
        net = _tiny_net(scheme="ibug68", dropout=0.1, **builder)[1]
        assert net.get_layer("head_dropout").rate == head_rate
        inner = {layer.rate for layer in net._flatten_layers() if isinstance(layer, keras.layers.Dropout)
                 and layer.name != "head_dropout"}
        assert inner == {0.1}, inner
        assert net.get_config()["head_dropout"] == builder.get("head_dropout")
    for bad in (1.0, -0.1, "0.1"):
        with pytest.raises(InvalidArgumentError, match=f"head_dropout must be in \\[0, 1\\); got {bad!r}"):
            _tiny_net(head_dropout=bad)


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.slow
def test_tiny_lotr_trains_on_lfw_teacher_labels(shared_data):
    """A tiny LOTR (MobileNetV2-0.25, 8x8 tokens, D = 16, 64 px 5-point crops, 68 points) in lotr_m.300w's query
    layout trains 40 steps with the recipe's optimizer (LAMB 1e-3), loss (smooth-Wing in crop pixels) and
    augmentation on LFW teacher labels: the training loss and the loss on held-out faces fall, and the points
    spread over the face (in the paper's layout this run ends with spread 0.03: every point at one spot)."""
    from lmkzoo.data.pipeline import make_dataset
    from lmkzoo.training.optimizers import build_optimizer

    train_rows, val_rows = person_split(shared_data, 128, 32)

    def source(rs):
        return example_dataset(shared_data, rs)[0]

    layout = {k: get_spec("lotr_m.300w").builder[k] for k in ("query_pos", "query_stddev")}
    assert layout == {"query_pos": True, "query_stddev": 1.0}
    spec, net = _tiny_net(scheme="ibug68", **layout)
    fam = get_family("lotr")
    common = dict(crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean, std=spec.std)
    epochs, batch = 5, 16  # 128 faces: 8 steps per epoch
    train_ds = make_dataset(source(train_rows), codec=net.codec, training=True, batch_size=batch,
                            augment=fam.augment_preset, epochs=epochs, seed=0, shuffle_buffer=128, **common)
    images, info = next(iter(make_dataset(source(val_rows), training=False, batch_size=32, **common)))
    targets = net.codec.encode(info["landmarks"], info["visible"])
    loss_fn = fam.default_loss(spec, net)

    def held_out_loss():
        return float(loss_fn(targets, net(images, training=False)))

    before = held_out_loss()
    recipe = {**spec.recipe, "schedule": {"name": "constant"}}  # LAMB 1e-3, no decay in 40 steps
    net.compile(optimizer=build_optimizer(recipe, 8), loss=loss_fn, jit_compile=False)
    history = net.fit(train_ds, epochs=epochs, steps_per_epoch=8, verbose=0).history["loss"]
    after = held_out_loss()
    # the points spread over the face: the loss also falls when every query gives the same point (the middle of
    # the face), which is where LOTR-M on 300-W stayed in the paper's layout
    pred = np.asarray(net(images, training=False)["coordinates"])  # fractions of the crop
    spread = float(np.mean(pred.std(axis=1)) / np.mean((np.asarray(info["landmarks"]) / 64.0).std(axis=1)))
    print(f"\n  training loss per epoch {[round(v, 1) for v in history]}; held-out loss {before:.1f} -> {after:.1f}; "
          f"spread of the predicted points / the faces' {spread:.2f}")
    assert all(np.isfinite(history)) and history[-1] < 0.6 * history[0]
    assert after < 0.7 * before
    assert spread > 0.5


# ------------------------------------------------------------------------------------------------ diagnosis
def test_lotr_diagnose_on_real_faces(ibug_300w_tfds, load_tool):
    """tools/lotr_diagnose.py (the numbers of docs/training_300w.md's LOTR section) on 24 Common faces with a tiny
    LOTR: the mean-shape and network NMEs are the metric's, the dropout modes switch exactly the dropouts they name
    and leave the network as it was, the stage shares lie in [0, 1]."""
    from lmkzoo import metrics
    from lmkzoo.data.pipeline import make_dataset

    tool = load_tool("lotr_diagnose")
    spec, net = _tiny_net(scheme="ibug68", dropout=0.3, head_dropout=0.5)
    ds = make_dataset("ibug_300w", crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean,
                      std=spec.std, split="test_common[:24]", data_dir=ibug_300w_tfds.root_data_dir, batch_size=8)
    gt = np.concatenate([info["landmarks"].numpy() for _, info in ds])
    mean_shape = gt.mean(axis=0) + 1.0
    rates = {layer.name: layer.rate for layer in net._flatten_layers() if isinstance(layer, keras.layers.Dropout)}
    statistics = [v.numpy() for v in net.non_trainable_variables]
    report = tool.diagnose(net, ds, mean_shape, scheme="ibug68", batch_size=8)

    assert report["faces"] == 24
    expect = 100 * metrics.nme(np.broadcast_to(mean_shape, gt.shape), gt, scheme="ibug68").mean()
    assert report["mean_shape_nme"] == pytest.approx(expect, rel=1e-6)
    pred = np.asarray(net.codec(net(np.concatenate([x.numpy() for x, _ in ds]), training=False))["landmarks"])
    assert report["nme"] == pytest.approx(100 * metrics.nme(pred, gt, scheme="ibug68").mean(), rel=1e-4)
    assert report["modes"]["inference"]["nme"] == report["nme"]
    # every dropout mode is stochastic here, so it moves the points; the network is left as it was
    for mode in ("every dropout", "dropout before the head only", "Transformer dropouts only"):
        assert report["modes"][mode]["nme"] != pytest.approx(report["nme"], rel=1e-6), mode
    assert rates == {layer.name: layer.rate for layer in net._flatten_layers()
                     if isinstance(layer, keras.layers.Dropout)}
    assert all(layer.trainable for layer in net._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(statistics, net.non_trainable_variables))
    assert set(report["across_image_share"]) >= {"tokens", "encoder0", "decoder0", "decoder_norm", "head_out"}
    assert all(0.0 <= v <= 1.0 for v in report["across_image_share"].values())

    # a mode turns on exactly the dropouts it names
    x = np.concatenate([x.numpy() for x, _ in ds])[:4]
    with tool.network_mode(net, dropouts="head"):
        on = {layer.name for layer in net._flatten_layers() if isinstance(layer, keras.layers.Dropout) and layer.rate}
        assert on == {"head_dropout"}
    with tool.network_mode(net, dropouts="none"):
        a, b = (np.asarray(net(x, training=True)["coordinates"]) for _ in range(2))
        assert np.array_equal(a, b)  # no dropout, BatchNorm on its moving statistics: deterministic
    with pytest.raises(ValueError, match="dropouts must be none, all, head or transformer; got 'some'"):
        with tool.network_mode(net, dropouts="some"):
            pass


def test_lotr_diagnose_cli_rejects_other_families(tmp_path, capsys, load_tool):
    tool = load_tool("lotr_diagnose")
    with pytest.raises(SystemExit) as e:
        tool.main(["pipnet_r18.300w", "--weights", str(tmp_path / "w.weights.h5")])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == "error: pipnet_r18.300w is a pipnet model; this tool reads LOTR networks"
    with pytest.raises(SystemExit) as e:
        tool.main(["lotr_m.300w", "--weights", str(tmp_path / "missing.weights.h5")])
    assert e.value.code == 2 and "error: no weights file" in capsys.readouterr().err
