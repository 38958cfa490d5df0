"""UGLLI: mean estimator and GLL against numpy references, SPD covariances, codec convention, DU-Net layout and
parameter count, .keras round trip, TFLite ops, recipe, uncertainty metric, predict with covariances and a
tiny model trained on the shared LFW faces."""

from collections import defaultdict

import keras
import numpy as np
import pytest
import tensorflow as tf

import lmkzoo
from lmkzoo import geometry
from lmkzoo.codecs import UGLLICodec
from lmkzoo.codecs.uglli_codec import cholesky_to_covariance, spatial_mean
from lmkzoo.crops import crop_affine
from lmkzoo.errors import InvalidArgumentError, ShapeMismatchError
from lmkzoo.losses import GaussianLogLikelihood
from lmkzoo.metrics import uncertainty_error_correlation
from lmkzoo.models.uglli import UGLLI, CholeskyFactor, NearestUpsampling
from lmkzoo.testing.round_trip import check_codec_round_trip, check_config_round_trip, check_keras_round_trip

EPS = 1e-5


# ------------------------------------------------------------------------------------------ numpy references
def np_spatial_mean(h, mode="relu", tau=0.02):
    """merlresearch/LUVLi pylib/HeatmapStats.py in numpy, torch layout: (B, H, W, C) → (B, C, 2)."""
    ht = np.asarray(h, np.float64).transpose(0, 3, 1, 2)
    if mode == "relu":
        w = np.maximum(ht, 0)
    else:
        t = 1.0 if mode == "softmax" else tau
        w = np.exp((ht - ht.max(axis=(2, 3), keepdims=True)) / t)
    p = w / (w.sum(axis=(2, 3), keepdims=True) + EPS)
    yv, xv = np.mgrid[0 : ht.shape[2], 0 : ht.shape[3]]
    s = p.sum(axis=(2, 3)) + EPS
    return np.stack([(p * xv).sum(axis=(2, 3)) / s, (p * yv).sum(axis=(2, 3)) / s], axis=-1)


def np_gll(mu, chol, target, vis, lam):
    """Paper Eq. 3 / official loss: ½ log(|Σ| + ε) + ½ dᵀ adj(Σ) d / (|Σ| + ε), mean over K, Σ_i λ_i, batch mean."""
    mu, chol = np.asarray(mu, np.float64), np.asarray(chol, np.float64)
    L = np.zeros(chol.shape[:-1] + (2, 2))
    L[..., 0, 0], L[..., 1, 0], L[..., 1, 1] = chol[..., 0], chol[..., 1], chol[..., 2]
    sigma = L @ np.swapaxes(L, -1, -2)
    det = np.linalg.det(sigma)
    adj = np.linalg.inv(sigma) * det[..., None, None]
    d = np.asarray(target, np.float64)[:, None] - mu
    nll = 0.5 * np.log(det + EPS) + 0.5 * np.einsum("...i,...ij,...j->...", d, adj, d) / (det + EPS)
    per_stack = (nll * np.asarray(vis)[:, None]).sum(-1) / mu.shape[2]
    return float((per_stack * np.asarray(lam)).sum(-1).mean())


def _tiny(k=5, size=64, stacks=2, estimator="relu", **kw):
    codec = UGLLICodec(k, (size, size), mean_estimator=estimator)
    return UGLLI(codec, num_stacks=stacks, channels=8, growth_rate=4, neck_size=2, num_blocks=2, **kw)


# ------------------------------------------------------------------------------------------ mean estimator / codec
@pytest.mark.parametrize("mode", ["relu", "softmax", "tau_softmax"])
def test_spatial_mean_matches_official_heatmap_stats(mode):
    h = np.random.default_rng(0).normal(size=(3, 16, 12, 7)).astype(np.float32)
    ours = spatial_mean(h, mean_estimator=mode, temperature=0.02).numpy()
    assert ours.shape == (3, 7, 2)
    assert np.allclose(ours, np_spatial_mean(h, mode, 0.02), atol=2e-4)


def test_spatial_mean_is_sub_pixel_and_differentiable():
    """A bilinear splat at a sub-pixel position has exactly that mean; gradients reach the heatmap."""
    h = np.zeros((1, 16, 16, 1), np.float32)
    x, y = 5.3, 9.75
    x0, y0, fx, fy = int(x), int(y), x - int(x), y - int(y)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            h[0, y0 + dy, x0 + dx, 0] = wx * wy
    assert np.allclose(spatial_mean(h).numpy()[0, 0], [x, y], atol=1e-3)
    v = tf.Variable(h + 0.01)
    with tf.GradientTape() as tape:
        m = tf.reduce_sum(spatial_mean(v))
    g = tape.gradient(m, v).numpy()
    assert np.isfinite(g).all() and np.abs(g).sum() > 0


def test_codec_pixel_convention_and_round_trip():
    """Crop point p ↔ heatmap index p/4 − 0.5: a splat at the encoded target decodes back to p exactly."""
    codec = UGLLICodec(3, (256, 256))
    assert codec.heatmap_size == (64, 64) and codec.stride == (4.0, 4.0)
    t = codec.encode(np.array([[2.0, 2.0], [0.0, 256.0], [129.0, 37.5]], np.float32))
    assert np.allclose(t["points"].numpy(), [[0.0, 0.0], [-0.5, 63.5], [31.75, 8.875]])
    assert np.array_equal(t["visible"].numpy(), np.ones(3))
    pts = np.random.default_rng(1).uniform(8, 248, (2, 3, 2)).astype(np.float32)
    chol = np.tile(np.array([1.0, 0.5, 2.0], np.float32), (2, 3, 1))

    def splat(targets):
        """Bilinear splats at the encoded points (heatmap pixels), with a fixed Cholesky factor."""
        tgt = targets["points"].numpy()
        hm = np.zeros((2, 64, 64, 3), np.float32)
        for b in range(2):
            for k in range(3):
                (x, y) = tgt[b, k]
                x0, y0, fx, fy = int(x), int(y), x - int(x), y - int(y)
                for dy, wy in ((0, 1 - fy), (1, fy)):
                    for dx, wx in ((0, 1 - fx), (1, fx)):
                        hm[b, y0 + dy, x0 + dx, k] = wx * wy
        return {"heatmaps": hm, "cholesky": chol}

    _, outputs, dec = check_codec_round_trip(codec, pts, atol=2e-3, to_outputs=splat)
    hm = outputs["heatmaps"]
    # Σ_hm = [[1, .5], [.5, 4.25]] heatmap px² → ×16 in crop px²
    assert np.allclose(dec["covariance"].numpy()[0, 0], 16 * np.array([[1.0, 0.5], [0.5, 4.25]]), rtol=1e-6)
    assert np.allclose(dec["scores"].numpy(), hm.reshape(2, -1, 3).max(1))
    # batched encode (tf.data maps a whole batch) and non-square crops
    c2 = UGLLICodec(1, (128, 64))
    assert c2.heatmap_size == (32, 16)
    assert np.allclose(c2.encode(np.array([[[6.0, 10.0]]]))["points"].numpy(), [[[1.0, 2.0]]])


def test_codec_and_loss_errors():
    with pytest.raises(InvalidArgumentError, match="mean_estimator"):
        UGLLICodec(5, (64, 64), mean_estimator="argmax")
    with pytest.raises(InvalidArgumentError, match="temperature"):
        UGLLICodec(5, (64, 64), mean_estimator="tau_softmax", temperature=0)
    with pytest.raises(InvalidArgumentError, match="multiple of 4"):
        UGLLICodec(5, (66, 64))
    with pytest.raises(InvalidArgumentError, match="2\\^num_blocks"):
        UGLLI(UGLLICodec(5, (48, 48)), num_stacks=1, channels=4, num_blocks=3)
    with pytest.raises(InvalidArgumentError, match="num_stacks"):
        UGLLI(UGLLICodec(5, (64, 64)), num_stacks=0)
    with pytest.raises(InvalidArgumentError, match="supervision"):
        GaussianLogLikelihood(supervision="first")
    with pytest.raises(InvalidArgumentError, match="criterion"):
        GaussianLogLikelihood(criterion="l1")
    with pytest.raises(ShapeMismatchError, match="3 values but the network has 2"):
        GaussianLogLikelihood(stack_weights=[1, 1, 1]).weights_for(2)


# ------------------------------------------------------------------------------------------ loss
def _random_outputs(rng, b=4, s=3, k=6, h=16, w=16, direct=False):
    heat = rng.normal(size=(b, h, w, s * k)).astype(np.float32)
    raw = rng.normal(size=(b * s, k * 3)).astype(np.float32)
    chol = CholeskyFactor(k)(raw).numpy().reshape(b, s, k, 3)
    out = {"stack_heatmaps": heat, "stack_cholesky": chol}
    if direct:
        out["stack_means"] = rng.uniform(0, w, (b, s, k, 2)).astype(np.float32)
    target = {"points": rng.uniform(0, w - 1, (b, k, 2)).astype(np.float32),
              "visible": (rng.uniform(size=(b, k)) > 0.2).astype(np.float32)}
    return out, target


def test_gll_equals_numpy_reference_on_random_inputs():
    rng = np.random.default_rng(0)
    for _trial in range(5):
        out, tgt = _random_outputs(rng)
        b, s, k = out["stack_cholesky"].shape[:3]
        mu = np_spatial_mean(out["stack_heatmaps"]).reshape(b, s, k, 2)
        ours = float(GaussianLogLikelihood()(tgt, out))
        assert ours == pytest.approx(np_gll(mu, out["stack_cholesky"], tgt["points"], tgt["visible"], [1, 1, 1]), rel=1e-4)
        # λ_i, last-hourglass supervision (Table 3)
        lam = [0.5, 0.0, 2.0]
        assert float(GaussianLogLikelihood(stack_weights=lam)(tgt, out)) == pytest.approx(
            np_gll(mu, out["stack_cholesky"], tgt["points"], tgt["visible"], lam), rel=1e-4)
        assert float(GaussianLogLikelihood(supervision="last")(tgt, out)) == pytest.approx(
            np_gll(mu, out["stack_cholesky"], tgt["points"], tgt["visible"], [0, 0, 1]), rel=1e-4)
    # MSE ablation: the GLL with Σ = I without its constant
    eye = np.tile(np.array([1.0, 0.0, 1.0], np.float32), out["stack_cholesky"].shape[:3] + (1,))
    mse = float(GaussianLogLikelihood(criterion="mse")(tgt, out))
    gll_eye = np_gll(mu, eye, tgt["points"], tgt["visible"], [1, 1, 1]) - 3 * 0.5 * np.log(1 + EPS) * tgt["visible"].sum(1).mean() / k
    assert mse == pytest.approx(gll_eye, rel=1e-4)
    # softmax estimators and the direct-regression ablation read their own means
    soft = float(GaussianLogLikelihood(mean_estimator="tau_softmax", temperature=0.5)(tgt, out))
    mu_soft = np_spatial_mean(out["stack_heatmaps"], "tau_softmax", 0.5).reshape(b, s, k, 2)
    assert soft == pytest.approx(np_gll(mu_soft, out["stack_cholesky"], tgt["points"], tgt["visible"], [1, 1, 1]), rel=1e-4)
    out_d, tgt_d = _random_outputs(rng, direct=True)
    assert float(GaussianLogLikelihood(mean_estimator="direct")(tgt_d, out_d)) == pytest.approx(
        np_gll(out_d["stack_means"], out_d["stack_cholesky"], tgt_d["points"], tgt_d["visible"], [1, 1, 1]), rel=1e-4)
    with pytest.raises(InvalidArgumentError, match="stack_means"):
        GaussianLogLikelihood(mean_estimator="direct")(tgt, out)
    # the loss and its config survive serialisation
    loss = GaussianLogLikelihood(stack_weights=[1, 2, 3], supervision="all", temperature=0.1)
    check_config_round_trip(loss, via=keras.losses)


# ------------------------------------------------------------------------------------------ covariances
def test_cholesky_covariances_are_symmetric_positive_definite():
    """Property test over many random CEN outputs: Σ = L Lᵀ with ELU + 1 diagonals is SPD (raw outputs up to
    about ±5; float32 cannot hold Σ once its axis ratio passes ~10³, see ``cholesky_to_covariance``)."""
    rng = np.random.default_rng(0)
    factor = CholeskyFactor(17)
    for scale in (0.1, 0.5, 1.0):
        for _ in range(20):
            raw = (rng.normal(size=(64, 17 * 3)) * scale).astype(np.float32)
            chol = factor(raw).numpy()
            assert (chol[..., 0] > 0).all() and (chol[..., 2] > 0).all()
            cov = cholesky_to_covariance(chol).numpy().astype(np.float64)
            assert np.array_equal(cov, np.swapaxes(cov, -1, -2))
            assert (np.linalg.eigvalsh(cov) > 0).all()
            np.linalg.cholesky(cov)  # raises unless positive definite


def test_network_covariances_are_spd_for_random_inputs():
    net = _tiny(k=7)
    fn = tf.function(lambda x: net.decode(net(x, training=False)))
    rng = np.random.default_rng(0)
    for draw in range(12):
        x = rng.normal(size=(8, 64, 64, 3)) * (0.1 + draw) + rng.normal() * draw
        cov = fn(tf.constant(x, tf.float32))["covariance"].numpy().astype(np.float64)
        assert cov.shape == (8, 7, 2, 2)
        assert np.array_equal(cov, np.swapaxes(cov, -1, -2))
        assert (np.linalg.eigvalsh(cov) > 0).all()


# ------------------------------------------------------------------------------------------ network
def _reference_param_count(k, stacks=8, ch=128, growth=32, neck=4, blocks=4, order=1, bottleneck_hw=4):
    """Trainable parameters of merlresearch/LUVLi's _CU_Net_Wrapper (order-`order` coupling), counted from its
    module definitions (convs without bias, BN weight + bias, Linear weight + bias), without the LUVLi-only
    visibility layer (`probability`)."""
    bn_conv = lambda cin, cout, kk=1: 2 * cin + cin * cout * kk * kk  # noqa: E731

    def dense_block(cin, out, skip):
        total = 0
        for i in range(stacks):
            saved = min(i, order)
            c_layer = cin + saved * growth
            total += bn_conv(c_layer, neck * growth) + 2 * neck * growth + neck * growth * growth * 9
            total += (2 if skip else 1) * bn_conv(c_layer + growth, out)
        return total

    total = 3 * ch * 49 + 2 * ch  # conv0 + norm0
    total += blocks * (dense_block(ch, ch, True) + dense_block(2 * ch, ch, False)) + dense_block(ch, ch, False)
    total += sum(bn_conv(ch + min(i, order) * ch, ch) for i in range(1, stacks))  # intermedia adapters
    total += stacks * bn_conv(ch, k)  # linears
    total += ch * bottleneck_hw**2 * k * 3 + k * 3  # CEN fc_1
    return total


@pytest.fixture(scope="module")
def default_landmarker():
    return lmkzoo.load("uglli_hg", weights=None)


def test_default_model_layout_and_parameter_count(default_landmarker):
    net = default_landmarker.network
    assert isinstance(net, UGLLI) and net.num_stacks == 8 and net.channels == 128
    trainable = sum(int(np.prod(w.shape)) for w in net.trainable_weights)
    assert trainable == _reference_param_count(68) == 8_481_228
    out = {k: tuple(v.shape) for k, v in net.output.items()}
    assert out["heatmaps"] == (None, 64, 64, 68) and out["cholesky"] == (None, 68, 3)
    assert out["stack_heatmaps"] == (None, 64, 64, 8 * 68) and out["stack_cholesky"] == (None, 8, 68, 3)
    # one CEN shared by all hourglasses, fed by the 4x4x128 = 2048 bottleneck
    cen = net.get_layer("cholesky_fc_1")
    assert tuple(cen.kernel.shape) == (2048, 204)
    assert sum(1 for w in net.trainable_weights if "cholesky_fc_1" in w.path) == 2
    assert default_landmarker.spec.crop == {"policy": "box", "scale": 1.1, "square": True}


def test_parameter_count_formula_on_other_settings():
    for stacks, order in ((2, 1), (3, 2), (2, 0)):
        net = UGLLI(UGLLICodec(5, (64, 64)), num_stacks=stacks, channels=8, growth_rate=4, neck_size=2, num_blocks=2,
                    order=order)
        trainable = sum(int(np.prod(w.shape)) for w in net.trainable_weights)
        assert trainable == _reference_param_count(5, stacks, 8, 4, 2, 2, order, bottleneck_hw=4), (stacks, order)


def test_torch_flatten_order_and_upsampling():
    """The CEN sees the bottleneck flattened as torch's C, H, W; upsampling copies input i // 2 (nn.Upsample)."""
    net = _tiny(k=2, stacks=1)
    sub = keras.Model(net.input, [net.get_layer("hg_pool1_0").output, net.get_layer("cholesky_flatten_0").output])
    bott, flat = sub(np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32))
    assert np.array_equal(flat.numpy(), bott.numpy().transpose(0, 3, 1, 2).reshape(2, -1))
    x = np.random.default_rng(1).normal(size=(2, 3, 5, 4)).astype(np.float32)
    assert np.array_equal(NearestUpsampling(2)(x).numpy(), x.repeat(2, axis=1).repeat(2, axis=2))


@pytest.mark.parametrize("estimator", ["relu", "direct"])
def test_tiny_network_keras_round_trip(tmp_path, estimator):
    net = _tiny(estimator=estimator)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    out = net(x)
    assert out["heatmaps"].shape == (2, 16, 16, 5) and out["stack_heatmaps"].shape == (2, 16, 16, 10)
    assert out["stack_cholesky"].shape == (2, 2, 5, 3)
    assert np.allclose(out["stack_cholesky"][:, -1], out["cholesky"]) and np.allclose(out["stack_heatmaps"][..., 5:], out["heatmaps"])
    if estimator == "direct":
        assert out["means"].shape == (2, 5, 2) and out["stack_means"].shape == (2, 2, 5, 2)
    back = check_keras_round_trip(net, x, tmp_path / "uglli.keras", keys=("landmarks", "scores", "covariance"), atol=1e-5)
    assert back.codec.get_config() == net.codec.get_config() and back.get_config()["num_stacks"] == 2


def test_serving_graph_converts_to_gpu_friendly_tflite():
    """The decode in the serving graph uses only ops the TFLite GPU delegate runs, all tensors at most 4-D."""
    from ai_edge_litert.interpreter import Interpreter

    from lmkzoo.export.serving import build_serving_model

    for estimator in ("relu", "tau_softmax"):
        net = UGLLI(UGLLICodec(5, (32, 32), mean_estimator=estimator), num_stacks=2, channels=8, growth_rate=4,
                    neck_size=2, num_blocks=2)
        serving = build_serving_model(net, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        fn = tf.function(lambda x: serving(x), input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.uint8)])  # noqa: B023
        flat = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()]).convert()
        interp = Interpreter(model_content=flat)
        ops_ = interp._get_ops_details()
        names = {o["op_name"] for o in ops_}
        assert not names & {"GATHER", "GATHER_ND", "ONE_HOT", "UNSORTED_SEGMENT_SUM", "STRIDED_SLICE", "TILE", "PACK"}, names
        ranks = {t["index"]: len(t["shape"]) for t in interp.get_tensor_details()}
        assert max(ranks[i] for o in ops_ for i in [*o["inputs"], *o["outputs"]] if i >= 0) <= 4
        interp.allocate_tensors()
        x = np.random.default_rng(0).integers(0, 255, (1, 32, 32, 3)).astype(np.uint8)
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        got = {tuple(d["shape"]): interp.get_tensor(d["index"]) for d in interp.get_output_details()}
        for key, ref in serving(x).items():
            assert np.allclose(got[tuple(ref.shape)], ref.numpy(), atol=1e-3, rtol=1e-3), key


# ------------------------------------------------------------------------------------------ recipe / registry
def test_recipe_optimizer_schedule_loss_and_preset():
    from lmkzoo.data.presets import get_preset
    from lmkzoo.families.base import get_family
    from lmkzoo.training.optimizers import build_optimizer

    spec = lmkzoo.get_spec("uglli_hg")
    assert spec.name == "uglli_hg.300w" and spec.scheme == "ibug68" and spec.input_size == (256, 256)
    assert spec.recipe["batch_size"] == 24 and spec.recipe["epochs"] == 40
    opt = build_optimizer(spec.recipe, steps_per_epoch=10)
    assert isinstance(opt, keras.optimizers.RMSprop)
    assert opt.rho == pytest.approx(0.99) and opt.momentum == 0.0 and not opt.centered
    assert opt.epsilon == pytest.approx(1e-16)  # torch eps 1e-8 outside the root == 1e-16 inside
    lrs = []
    for step in (0, 199, 201, 399):
        opt.iterations.assign(step)
        lrs.append(float(opt.learning_rate))
    assert lrs == pytest.approx([1e-4, 1e-4, 2e-5, 2e-5])  # x0.2 at epoch 20 of 40
    fam = get_family("uglli")
    assert fam.augment_preset == spec.recipe["augment"] == "uglli"
    preset = get_preset("uglli")
    assert preset["rotate"]["max_deg"] == 30 and "flip" not in preset  # LUVLi's loaders never flip
    assert preset["scale"]["range"] == pytest.approx([0.75, 1.25]) and preset["scale"]["box"]  # box factor 1 ± 0.25
    net = _tiny()
    loss = fam.default_loss(spec, net)
    assert isinstance(loss, GaussianLogLikelihood) and loss.supervision == "all" and loss.criterion == "gll"
    # the hourglass count is a builder argument
    small = fam.build_network(spec, num_stacks=1, channels=8, growth_rate=4, neck_size=2)
    assert small.num_stacks == 1 and small.codec.num_points == 68
    with pytest.raises(InvalidArgumentError, match="unknown builder arguments"):
        fam.build_network(spec, stacks=2)


def test_channel_scale_augmentation_and_uglli_pipeline():
    from lmkzoo.data import transforms as T
    from lmkzoo.data.pipeline import make_dataset

    img = tf.fill([8, 8, 3], 100.0)
    out = T.channel_scale(img, 0.6, 1.4, seed=[3, 0]).numpy()
    per_channel = out.reshape(-1, 3)[0]
    assert np.all((per_channel >= 60) & (per_channel <= 140)) and np.allclose(out, per_channel)
    assert np.array_equal(T.channel_scale(img, 0.6, 1.4, p=0.0, seed=[3, 0]).numpy(), img.numpy())
    # one augmented training batch through the uglli preset and the codec's targets
    rng = np.random.default_rng(0)
    pts = rng.uniform(40, 90, (4, 68, 2)).astype(np.float32)
    src = tf.data.Dataset.from_tensor_slices({
        "image": rng.integers(0, 255, (4, 128, 128, 3)).astype(np.uint8), "landmarks": pts,
        "visible": np.ones((4, 68), np.float32), "bbox": geometry.points_bbox(pts).astype(np.float32)})
    spec = lmkzoo.get_spec("uglli_hg")
    codec = UGLLICodec(68, (64, 64))
    x, y = next(iter(make_dataset(src, crop=spec.crop, input_size=(64, 64), scheme="ibug68", mean=spec.mean,
                                  std=spec.std, codec=codec, training=True, batch_size=4, augment="uglli", seed=1)))
    assert x.shape == (4, 64, 64, 3) and y["points"].shape == (4, 68, 2) and y["visible"].shape == (4, 68)
    assert float(tf.reduce_max(x)) <= 1.0 and float(tf.reduce_min(x)) >= 0.0  # [0, 1] input, no mean/std


# ------------------------------------------------------------------------------------------ metric + predict
def test_uncertainty_error_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    n, k = 30, 68
    gt = rng.uniform(50, 200, (n, k, 2))
    sigma = rng.uniform(0.5, 4, (n, k))
    pred = gt + rng.normal(size=(n, k, 2)) * sigma[..., None]
    cov = np.zeros((n, k, 2, 2))
    cov[..., 0, 0] = cov[..., 1, 1] = sigma**2
    vis = rng.uniform(size=(n, k)) > 0.1
    res = uncertainty_error_correlation(pred, gt, cov, scheme="ibug68", visible=vis)
    d = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)[:, None]
    err = np.linalg.norm(pred - gt, axis=-1) / d
    unc = sigma / d
    assert res.per_landmark == pytest.approx(np.corrcoef(err[vis], unc[vis])[0, 1])
    img_e = np.array([err[i, vis[i]].mean() for i in range(n)])
    img_u = np.array([unc[i, vis[i]].mean() for i in range(n)])
    assert res.per_image == pytest.approx(np.corrcoef(img_e, img_u)[0, 1])
    assert res.per_landmark > 0.3  # errors drawn with the predicted spread correlate with it
    assert np.isnan(res.errors[~vis]).all() and res.as_dict()["num_landmarks"] == int(vis.sum())
    with pytest.raises(ShapeMismatchError):
        uncertainty_error_correlation(pred, gt, cov[:, :10], scheme="ibug68")


def test_predict_returns_image_space_covariances_and_uncertainty(default_landmarker):
    lm = default_landmarker
    img = np.random.default_rng(0).integers(0, 255, (300, 280, 3)).astype(np.uint8)
    boxes = [[60.0, 70.0, 200.0, 230.0], [10.0, 10.0, 100.0, 120.0]]
    faces = lm.predict(img, boxes=boxes)
    assert len(faces) == 2
    for face, box in zip(faces, boxes):
        assert face.points.shape == (68, 2) and face.covariance.shape == (68, 2, 2) and face.uncertainty.shape == (68,)
        cov = face.covariance.astype(np.float64)
        assert np.allclose(cov, np.swapaxes(cov, -1, -2)) and (np.linalg.eigvalsh(cov) > 0).all()
        assert np.allclose(face.uncertainty, np.linalg.det(cov) ** 0.25, rtol=1e-4)
        # the serving graph's crop-pixel covariance, pulled back through the crop's affine: A⁻¹ Σ A⁻ᵀ
        m = crop_affine(lm.spec.crop, lm.input_size, box=box)
        crop_out = lm.runner(geometry.warp_affine(img, m, lm.input_size)[None])
        side = 1.1 * max(box[2] - box[0], box[3] - box[1])
        assert np.allclose(cov, crop_out["covariance"][0] * (side / 256.0) ** 2, rtol=1e-3, atol=1e-6)
        assert np.allclose(face.points, geometry.apply_affine(crop_out["landmarks"][0], geometry.invert_affine(m)), atol=1e-2)
        assert "uncertainty" in face.to_dict()
    flipped = lm.predict(img, boxes=boxes[:1], flip_test=True)[0]
    assert (np.linalg.eigvalsh(flipped.covariance.astype(np.float64)) > 0).all()


def test_load_with_builder_overrides(tmp_path):
    """lmkzoo.load(name, weights=None, builder={...}) changes the zoo builder arguments (here a tiny 2-hourglass
    UGLLI); the Landmarker keeps the zoo spec, the network records the overrides, a weights file of the same
    architecture loads, and unknown keys are refused by the family."""
    tiny = {"num_stacks": 2, "channels": 16, "growth_rate": 8, "neck_size": 2, "num_blocks": 2}
    lm = lmkzoo.load("uglli_hg", weights=None, builder=tiny)
    net = lm.network
    assert isinstance(net, UGLLI) and net.num_stacks == 2 and net.channels == 16
    assert net.output["stack_cholesky"].shape[1:] == (2, 68, 3)
    assert lm.spec.builder["num_stacks"] == 8  # the zoo's spec is unchanged
    assert net.zoo_spec["builder"] == {**lm.spec.builder, **tiny}
    img = np.random.default_rng(1).integers(0, 255, (200, 180, 3)).astype(np.uint8)
    face = lm.predict(img, boxes=[[40.0, 40.0, 150.0, 160.0]])[0]
    assert face.points.shape == (68, 2) and face.covariance.shape == (68, 2, 2)
    # a weights file of the overridden architecture loads back (same outputs); the zoo architecture does not fit it
    weights = tmp_path / "tiny.weights.h5"
    net.save_weights(weights)
    back = lmkzoo.load("uglli_hg", weights=weights, builder=tiny)
    x = np.random.default_rng(2).uniform(0, 1, (1, 256, 256, 3)).astype(np.float32)
    assert np.allclose(back.network(x)["stack_cholesky"], net(x)["stack_cholesky"], atol=1e-5)
    # a saved .keras file carries the overrides in its spec
    net.save(tmp_path / "tiny.keras")
    assert lmkzoo.load(tmp_path / "tiny.keras").network.zoo_spec["builder"]["num_stacks"] == 2
    with pytest.raises(InvalidArgumentError, match=r"unknown builder arguments \['num_hourglasses'\]"):
        lmkzoo.load("uglli_hg", weights=None, builder={"num_hourglasses": 2})
    with pytest.raises(InvalidArgumentError, match="builder must be a dict"):
        lmkzoo.load("uglli_hg", weights=None, builder=[("num_stacks", 2)])
    with pytest.raises(InvalidArgumentError, match="a .keras file carries its own architecture"):
        lmkzoo.load("uglli_hg", weights=tmp_path / "tiny.keras", builder=tiny)
    with pytest.raises(InvalidArgumentError, match="model file with its own"):
        lmkzoo.load(tmp_path / "tiny.keras", builder=tiny)


# ------------------------------------------------------------------------------------------ training on real faces
def _lfw(shared, people, limit):
    from datasets_tfds._common.parsers import read_points_csv
    from lmkzoo.image_io import read_image

    by_person = defaultdict(list)
    for _, image, pts, _, _ in read_points_csv(shared / "lfw_faces" / "teacher68.csv", 68):
        by_person[image.split("/")[0]].append((image, pts))
    names = sorted(by_person)
    rows = [r for p in people(names) for r in by_person[p]][:limit]
    pts = np.stack([p for _, p in rows]).astype(np.float32)
    return {"image": np.stack([read_image(shared / "lfw_faces" / i) for i, _ in rows]), "landmarks": pts,
            "visible": np.ones(pts.shape[:2], np.float32), "bbox": geometry.points_bbox(pts).astype(np.float32)}


def test_tiny_uglli_trains_on_shared_faces(shared_data):
    """2 hourglasses, 16 channels, 64 px crops of LFW (teacher labels, split by person): the GLL and the
    location error on held-out people both fall, and the uncertainty metric runs on the predictions."""
    from lmkzoo.data.pipeline import make_dataset

    keras.utils.set_random_seed(0)
    train = _lfw(shared_data, lambda names: names[:120], 320)
    held_out = _lfw(shared_data, lambda names: names[-20:], 64)
    spec = lmkzoo.get_spec("uglli_hg")
    codec = UGLLICodec(68, (64, 64))
    net = UGLLI(codec, num_stacks=2, channels=16, growth_rate=8, neck_size=2, num_blocks=2)
    common = dict(crop=spec.crop, input_size=(64, 64), scheme="ibug68", mean=spec.mean, std=spec.std)
    ds = make_dataset(tf.data.Dataset.from_tensor_slices(train), codec=codec, training=True, batch_size=16,
                      augment="none", epochs=8, seed=0, **common)
    (vx, info), = make_dataset(tf.data.Dataset.from_tensor_slices(held_out), training=False, batch_size=64, **common)
    decode = tf.function(lambda x: net.decode(net(x, training=False)))

    def location_error():
        return float(np.linalg.norm(decode(vx)["landmarks"].numpy() - info["landmarks"].numpy(), axis=-1).mean())

    before = location_error()
    net.compile(optimizer=keras.optimizers.RMSprop(2e-3), loss=GaussianLogLikelihood())
    hist = net.fit(ds, epochs=6, steps_per_epoch=12, shuffle=False, verbose=0).history["loss"]
    after = location_error()
    print(f"tiny UGLLI on LFW: loss per epoch {np.round(hist, 2).tolist()}, held-out error {before:.2f} -> {after:.2f} px")
    assert hist[-1] < hist[0] - 5.0 and hist[-1] < hist[1], hist
    assert after < 0.6 * before, (before, after)
    out = decode(vx)
    res = uncertainty_error_correlation(out["landmarks"].numpy(), info["landmarks"].numpy(), out["covariance"].numpy(),
                                        scheme="ibug68")
    assert np.isfinite(res.per_landmark) and np.isfinite(res.per_image)
