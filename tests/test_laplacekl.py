"""LaplaceKL family: RCN generator (Table 1 / Table 3), soft-argmax codec, KL losses, PatchGAN, adversarial training."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import lmkzoo
from lmkzoo import crops, geometry, schemes
from lmkzoo.codecs import LaplaceCodec
from lmkzoo.errors import InvalidArgumentError, WeightsUnavailableError
from lmkzoo.losses import GaussianKL, LaplaceKL, SoftArgmaxL2
from lmkzoo.models.laplacekl import PAPER_PARAMETERS, RCN, PatchDiscriminator
from lmkzoo.models.layers import SoftArgmax2D
from lmkzoo.testing.round_trip import check_config_round_trip, check_keras_round_trip
from lmkzoo.training.adversarial import AdversarialLandmarkTrainer, make_adversarial_dataset


def _table1_count(width, k=68, filters=64):
    """Parameters of Table 1 read literally (conv weights + biases), for the docstring's arithmetic."""
    c, d = max(1, round(filters * width)), max(1, round(2 * filters * width))
    enc = (3 * 9 * c + c) + 3 * (c * 9 * c + c)
    dec = (c * c + c) + 3 * (d * c + c) + 4 * (2 * c * 25 * d + d)
    return enc + dec + (d * k + k) + (k * k + k)


def test_rcn_parameter_counts_against_table3():
    rows = []
    for width, paper_m in sorted(PAPER_PARAMETERS.items()):
        net = RCN(LaplaceCodec(68, (80, 80)), width=width)
        ours = net.count_params()
        assert ours == _table1_count(width)
        rows.append((width, ours, paper_m))
    print("\nRCN parameters (ours vs Robinson et al. 2019, Table 3)")
    for width, ours, paper_m in rows:
        print(f"  width 1/{round(1 / width):<3d} ours {ours / 1e6:.4f}M  paper {paper_m:.4f}M  ({ours / (paper_m * 1e6) - 1:+.1%})")
    full = dict((w, o) for w, o, _ in rows)[1.0]
    assert abs(full / 1.8724e6 - 1) < 0.10
    out = net(np.zeros((2, 80, 80, 3), np.float32))
    assert out["heatmaps"].shape == (2, 80, 80, 68)
    # layer plan of Table 1: 4 encoder 3x3 convs, 4 decoder 1x1 + 4 fusion 5x5 convs, 2 heatmap 1x1 convs
    kinds = [layer.kernel_size for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    assert kinds.count((3, 3)) == 4 and kinds.count((5, 5)) == 4 and kinds.count((1, 1)) == 6
    assert sum(isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation == "bilinear" for layer in net.layers) == 4
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in net.layers) == 4
    assert all(layer.negative_slope == pytest.approx(0.2) for layer in net.layers if isinstance(layer, keras.layers.LeakyReLU))
    assert all(layer.rate == pytest.approx(0.2) for layer in net.layers if isinstance(layer, keras.layers.Dropout))


def test_zoo_params_m_equals_table3_for_every_width():
    """Every laplacekl-family tag that quotes params_m quotes Table 3's value for its width (PAPER_PARAMETERS)."""
    from lmkzoo.registry import get_spec

    checked = 0
    for name in lmkzoo.list_models("*rcn*"):
        spec = get_spec(name)
        if spec.family != "laplacekl" or "params_m" not in spec.paper_metrics:
            continue
        width = float(spec.builder["width"])
        assert width in PAPER_PARAMETERS, (name, width)
        assert spec.paper_metrics["params_m"] == PAPER_PARAMETERS[width], (name, spec.paper_metrics["params_m"])
        checked += 1
    assert checked == 3 * len(PAPER_PARAMETERS)  # laplacekl_rcn, laplacekl_rcn_d, softargmax_rcn x 5 widths


def _np_softmax_moments(h, beta):
    """numpy reference: p, mean and per-axis scales (α = 1, 2) of (B, H, W, K) scores, pixel centres i + 0.5."""
    b, hh, ww, k = h.shape
    logits = beta * h.transpose(0, 3, 1, 2).reshape(b, k, -1).astype(np.float64)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    ys, xs = np.meshgrid(np.arange(hh) + 0.5, np.arange(ww) + 0.5, indexing="ij")
    xs, ys = xs.reshape(-1), ys.reshape(-1)
    mx, my = (p * xs).sum(-1), (p * ys).sum(-1)
    b1 = np.stack([(p * np.abs(xs - mx[..., None])).sum(-1), (p * np.abs(ys - my[..., None])).sum(-1)], -1)
    v = np.stack([(p * (xs - mx[..., None]) ** 2).sum(-1), (p * (ys - my[..., None]) ** 2).sum(-1)], -1)
    return p, np.stack([mx, my], -1), b1, v


def test_soft_argmax_layer_matches_numpy_and_pixel_centres():
    rng = np.random.default_rng(0)
    h = rng.normal(0, 2, (2, 12, 16, 5)).astype(np.float32)
    out = SoftArgmax2D(beta=1.5)(h)
    p, mean, b1, _ = _np_softmax_moments(h, 1.5)
    assert np.allclose(out["landmarks"], mean, atol=1e-4)
    assert np.allclose(out["scale"], b1, atol=1e-4)
    assert np.allclose(out["peak"], p.max(-1), atol=1e-6)
    assert np.allclose(SoftArgmax2D(alpha=2)(h)["scale"], _np_softmax_moments(h, 1.0)[3], rtol=1e-4)
    # a (numerically) one-hot map at column 3, row 7 decodes to that pixel's centre
    peaked = np.full((1, 12, 16, 1), -1e4, np.float32)
    peaked[0, 7, 3, 0] = 0.0
    assert np.allclose(SoftArgmax2D()(peaked)["landmarks"], [[[3.5, 7.5]]], atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="beta"):
        SoftArgmax2D(beta=0)
    with pytest.raises(InvalidArgumentError, match="alpha"):
        SoftArgmax2D(alpha=3)


def test_codec_decode_crop_pixels_covariance_and_encode():
    # heatmaps at half the input size: heatmap pixel i covers crop pixels [2i, 2i + 2), centre 2i + 1
    codec = LaplaceCodec(3, input_size=(64, 48), heatmap_size=(32, 24))
    maps = np.full((1, 24, 32, 3), -1e4, np.float32)
    maps[0, 5, 10, 0] = 0.0  # x = 10, y = 5
    maps[0, 0, 0, 1] = 0.0
    maps[0, 23, 31, 2] = 0.0
    dec = codec({"heatmaps": maps})
    assert np.allclose(dec["landmarks"], [[[21.0, 11.0], [1.0, 1.0], [63.0, 47.0]]], atol=1e-4)
    assert np.allclose(dec["scores"], 1.0)
    # random maps: scale and covariance = diag(2 b²) in crop pixels (b per axis, times the stride 2)
    rng = np.random.default_rng(1)
    h = rng.normal(0, 3, (2, 24, 32, 3)).astype(np.float32)
    dec = codec({"heatmaps": h})
    p, mean, b1, _ = _np_softmax_moments(h, 1.0)
    assert np.allclose(dec["landmarks"], mean * 2, atol=1e-3)
    assert np.allclose(dec["scale"], b1 * 2, atol=1e-3)
    cov = dec["covariance"].numpy()
    assert np.allclose(cov[..., 0, 0], 2 * (2 * b1[..., 0]) ** 2, rtol=1e-4)
    assert np.allclose(cov[..., 1, 1], 2 * (2 * b1[..., 1]) ** 2, rtol=1e-4)
    assert np.all(cov[..., 0, 1] == 0) and np.all(cov[..., 1, 0] == 0)
    assert np.allclose(dec["scores"], p.max(-1), atol=1e-6)
    # encode: crop pixels -> heatmap pixels, works batched
    pts = rng.uniform(0, 48, (4, 3, 2)).astype(np.float32)
    t = codec.encode(pts, np.ones((4, 3)))
    assert np.allclose(t["landmarks"], pts / 2) and t["visible"].shape == (4, 3)
    with pytest.raises(InvalidArgumentError, match="beta"):
        LaplaceCodec(3, beta=-1)


def test_render_omega_is_normalised_laplace():
    codec = LaplaceCodec(2, (40, 40))
    s = np.array([[[12.3, 20.0], [30.5, 8.75]]], np.float32)
    heat = codec.render(s).numpy()
    assert heat.shape == (1, 40, 40, 2)
    assert np.allclose(heat.sum((1, 2)), 1.0, atol=1e-5)
    # separable Laplace(s, 1) at pixel centres
    xs = np.arange(40) + 0.5
    ref = np.exp(-np.abs(xs[None, :] - s[0, 0, 0]) - np.abs(xs[:, None] - s[0, 0, 1]))
    assert np.allclose(heat[0, ..., 0], ref / ref.sum(), atol=1e-7)
    # the soft-argmax of ω(s) (log-probabilities as scores) lands within a few hundredths of a pixel of s
    dec = SoftArgmax2D()(np.log(heat + 1e-30))
    assert np.allclose(dec["landmarks"], s, atol=0.05)
    g = codec.render(s, distribution="gaussian").numpy()
    assert np.allclose(g.sum((1, 2)), 1.0, atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="distribution"):
        codec.render(s, distribution="cauchy")


def _np_laplace_kl(mu1, b1, mu2, b2):
    d = np.abs(mu1 - mu2)
    return np.log(b2 / b1) + d / b2 + b1 / b2 * np.exp(-d / b1) - 1


def test_laplace_kl_closed_form_matches_numerical_integration():
    from lmkzoo.losses.laplacekl_loss import gaussian_kl_divergence, laplace_kl_divergence

    x = np.linspace(-60, 60, 600001)
    for mu1, b1, mu2, b2 in [(0.3, 0.7, -1.1, 1.0), (2.0, 3.0, 0.0, 1.0), (0.0, 1.0, 0.0, 1.0)]:
        q = np.exp(-np.abs(x - mu1) / b1) / (2 * b1)
        p = np.exp(-np.abs(x - mu2) / b2) / (2 * b2)
        numeric = np.trapezoid(q * (np.log(q) - np.log(p)), x)
        assert float(laplace_kl_divergence(mu1, b1, mu2, b2)) == pytest.approx(numeric, abs=1e-5)
    for mu1, v1, mu2, v2 in [(0.3, 0.5, -1.1, 1.0), (2.0, 4.0, 0.0, 1.0)]:
        q = np.exp(-((x - mu1) ** 2) / (2 * v1)) / np.sqrt(2 * np.pi * v1)
        p = np.exp(-((x - mu2) ** 2) / (2 * v2)) / np.sqrt(2 * np.pi * v2)
        numeric = np.trapezoid(q * (np.log(q + 1e-300) - np.log(p + 1e-300)), x)
        assert float(gaussian_kl_divergence(mu1, v1, mu2, v2)) == pytest.approx(numeric, abs=1e-5)


def test_kl_losses_match_numpy_reference_on_random_heatmaps():
    rng = np.random.default_rng(42)
    b, hh, ww, k = 3, 20, 24, 7
    heat = rng.normal(0, 2.5, (b, hh, ww, k)).astype(np.float32)
    target = np.stack([rng.uniform(0, ww, (b, k)), rng.uniform(0, hh, (b, k))], -1).astype(np.float32)
    vis = (rng.uniform(size=(b, k)) > 0.3).astype(np.float32)
    vis[0] = 0  # an example without visible points contributes 0
    y_true = {"landmarks": target, "visible": vis}
    for beta, b0 in [(1.0, 1.0), (2.0, 1.5)]:
        _, mean, b1, var = _np_softmax_moments(heat, beta)
        lap = _np_laplace_kl(mean, b1 + 1e-6, target, b0).sum(-1)
        gau = (0.5 * (np.log(b0**2 / (var + 1e-6)) + (var + 1e-6 + (mean - target) ** 2) / b0**2 - 1)).sum(-1)
        l2 = np.sqrt(((mean - target) ** 2).sum(-1) + 1e-12)
        for loss, ref in [(LaplaceKL(beta=beta, target_scale=b0), lap), (GaussianKL(beta=beta, target_scale=b0), gau),
                          (SoftArgmaxL2(beta=beta), l2)]:
            per_example = (ref * vis).sum(-1) / np.maximum(vis.sum(-1), 1)
            got = keras.ops.convert_to_numpy(loss.call(y_true, {"heatmaps": heat}))
            assert np.allclose(got, per_example, rtol=2e-5, atol=1e-5), loss.name
            assert float(loss(y_true, {"heatmaps": heat})) == pytest.approx(per_example.mean(), rel=2e-5)
            assert np.allclose(keras.ops.convert_to_numpy(loss.call(target, heat)), ref.mean(-1), rtol=2e-5)
    # round trip of the configuration
    back = check_config_round_trip(LaplaceKL(beta=2.0, target_scale=0.5))
    assert (back.beta, back.target_scale) == (2.0, 0.5)
    with pytest.raises(InvalidArgumentError, match="target_scale"):
        LaplaceKL(target_scale=0)


def test_laplace_kl_gradient_sharpens_a_flat_map():
    """LaplaceKL penalises spread (the paper's point): its gradient sharpens a flat map, the L2 loss barely does."""
    codec = LaplaceCodec(1, (32, 32))
    target = codec.encode(np.array([[[16.0, 16.0]]], np.float32))
    heat = tf.Variable(np.zeros((1, 32, 32, 1), np.float32))
    grads = {}
    for loss in (LaplaceKL(), SoftArgmaxL2()):
        with tf.GradientTape() as tape:
            value = loss(target, {"heatmaps": heat})
        grads[loss.name] = tape.gradient(value, heat).numpy()[0, ..., 0]
    g = grads["laplace_kl"]
    # gradient descent raises the scores at the target's pixels relative to the far corner
    assert (-g[15:17, 15:17]).mean() - (-g[0, 0]) > 1e-3
    # the flat map's soft-argmax is already the target, so the L2 loss sees nothing to fix
    assert np.abs(grads["softargmax_l2"]).max() < 1e-3 * np.abs(g).max()


def test_patch_discriminator_layers():
    d = PatchDiscriminator((80, 80, 71), filters=8)
    x = np.random.default_rng(0).normal(size=(2, 80, 80, 71)).astype(np.float32)
    assert d(x).shape == (2, 18, 18, 1)
    convs = [layer for layer in d.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8, 16, 32, 1] and [c.strides for c in convs] == [(2, 2), (2, 2), (1, 1), (1, 1)]
    assert [layer.name for layer in d.layers if isinstance(layer, keras.layers.BatchNormalization)] == ["bn2", "bn3"]
    assert sum(isinstance(layer, keras.layers.LeakyReLU) for layer in d.layers) == 3
    noise = [layer for layer in d.layers if isinstance(layer, keras.layers.GaussianNoise)]
    assert len(noise) == 4 and all(layer.stddev == pytest.approx(0.2) for layer in noise)
    # noise only while training
    assert np.allclose(d(x, training=False), d(x, training=False))
    assert not np.allclose(d(x, training=True), d(x, training=True))
    back = check_config_round_trip(d)
    assert back.count_params() == d.count_params()
    with pytest.raises(InvalidArgumentError, match="input_shape"):
        PatchDiscriminator((80, 80))


def test_rcn_keras_round_trip_and_errors(tmp_path):
    net = RCN(LaplaceCodec(5, (32, 32), beta=2.0), width=0.125)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    back = check_keras_round_trip(net, x, tmp_path / "rcn.keras", keys=("landmarks", "scores", "covariance"), atol=1e-5)
    assert back.codec.beta == 2.0 and back.width == 0.125
    with pytest.raises(InvalidArgumentError, match="multiple of 16"):
        RCN(LaplaceCodec(5, (40, 40)))
    with pytest.raises(InvalidArgumentError, match="heatmap_size"):
        RCN(LaplaceCodec(5, (32, 32), heatmap_size=(16, 16)))
    with pytest.raises(InvalidArgumentError, match="width"):
        RCN(LaplaceCodec(5, (32, 32)), width=0)


def test_serving_graph_tflite_ops_and_parity():
    """The serving graph converts to TFLite without GPU-hostile ops and matches Keras."""
    from ai_edge_litert.interpreter import Interpreter

    from lmkzoo.export.serving import build_serving_model
    from lmkzoo.inference.loader import build_network

    spec = lmkzoo.get_spec("laplacekl_rcn.300w_sixteenth")
    serving = build_serving_model(build_network(spec), mean=spec.mean, std=spec.std)
    fn = tf.function(lambda x: serving(x, training=False), input_signature=[tf.TensorSpec([1, 80, 80, 3], tf.uint8)])
    model = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()]).convert()
    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    ops_used = {o["op_name"] for o in interp._get_ops_details()}
    assert not ops_used & {"GATHER", "GATHER_ND", "STRIDED_SLICE", "ONE_HOT", "UNSORTED_SEGMENT_SUM", "PACK", "SQUARE"}
    assert {"SOFTMAX", "FULLY_CONNECTED", "LEAKY_RELU", "RESIZE_BILINEAR"} <= ops_used
    x = np.random.default_rng(0).integers(0, 256, (1, 80, 80, 3), dtype=np.uint8)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    outs = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
    ref = {k: v.numpy() for k, v in fn(x).items()}
    for key, value in ref.items():
        errs = [np.abs(o - value).max() for o in outs if o.shape == value.shape]
        assert min(errs) < 1e-3 * max(1.0, np.abs(value).max()), key


def _lfw_rows(shared_data):
    from datasets_tfds._common.parsers import read_points_csv

    return read_points_csv(shared_data / "lfw_faces" / "teacher68.csv", 68)


def _labeled_examples(shared_data, rows):
    root = shared_data / "lfw_faces"
    paths = [str(root / r[1]) for r in rows]
    pts = np.stack([r[2] for r in rows]).astype(np.float32)

    def ex(path, p):
        img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return {"image": img, "landmarks": p, "visible": tf.ones([68]), "bbox": tf.constant([0.0, 0.0, 250.0, 250.0])}

    return tf.data.Dataset.from_tensor_slices((paths, pts)).map(ex)


def _unlabeled_images(shared_data, people, n):
    """Plain LFW JPEGs (no labels) with a fixed central box: LFW crops are centred on the face."""
    root = shared_data / "lfw_faces"
    files = sorted(str(p) for person in people for p in (root / person).glob("*.jpg"))[:n]
    return tf.data.Dataset.from_tensor_slices(files).map(
        lambda f: {"image": tf.io.decode_jpeg(tf.io.read_file(f), channels=3), "bbox": tf.constant([50.0, 55.0, 200.0, 205.0])}
    )


@pytest.mark.slow
def test_tiny_adversarial_run_updates_both_networks(shared_data, tmp_path):
    """LaplaceKL+D (Algorithm 1): labeled LFW-teacher faces + unlabeled LFW images of other people."""
    from lmkzoo.training.adversarial import train_adversarial

    rows = _lfw_rows(shared_data)
    people = sorted({r[1].split("/")[0] for r in rows})
    labeled_people, unlabeled_people = set(people[:2]), people[2:4]
    labeled = _labeled_examples(shared_data, [r for r in rows if r[1].split("/")[0] in labeled_people][:24])
    unlabeled = _unlabeled_images(shared_data, unlabeled_people, 24)
    steps, epochs = 6, 4
    generator, hist = train_adversarial(
        "laplacekl_rcn_d.300w_sixteenth", labeled=labeled, unlabeled=unlabeled, unlabeled_crop={"policy": "box"},
        out_dir=tmp_path, epochs=epochs, steps_per_epoch=steps, batch_size=4, discriminator_overrides={"filters": 16},
        verbose=0,
    )
    print("\nadversarial run:", {k: np.round(v, 4).tolist() for k, v in hist.items() if isinstance(v, list)})
    assert hist["generator_updates"] == hist["discriminator_updates"] == steps * epochs
    for key in ("g_loss", "d_loss", "adv_loss", "loss"):
        assert len(hist[key]) == epochs and np.all(np.isfinite(hist[key]))
    assert abs(hist["d_loss"][-1] - hist["d_loss"][0]) > 1e-3
    assert hist["g_loss"][-1] < hist["g_loss"][0]
    # λ = 0.001 ties the total to the supervised loss
    assert np.allclose(hist["loss"], np.array(hist["g_loss"]) + 1e-3 * np.array(hist["adv_loss"]), atol=1e-3)
    for name in ("final.keras", "final.weights.h5", "discriminator.weights.h5", "history.json", "log.csv"):
        assert (tmp_path / name).exists()
    assert json.loads((tmp_path / "config.json").read_text())["adversarial"]["weight"] == 1e-3
    # the saved generator loads as a Landmarker and predicts with its uncertainty
    lm = lmkzoo.load(tmp_path / "final.keras")
    img = tf.io.decode_jpeg(tf.io.read_file(str(shared_data / "lfw_faces" / rows[0][1])), channels=3).numpy()
    face = lm.predict(img, five_points=schemes.get("ibug68").five_points(rows[0][2]))[0]
    assert face.points.shape == (68, 2) and face.covariance.shape == (68, 2, 2)


@pytest.mark.slow
def test_killed_adversarial_run_resumes_to_the_same_weights(shared_data, tmp_path):
    """Killed after epoch 2 of 3 and started again with the same folder, the adversarial run ends with the weights
    of an uninterrupted one: both networks, both optimizers and both data streams resume where they stopped."""
    import keras

    from lmkzoo.training.adversarial import train_adversarial

    rows = _lfw_rows(shared_data)
    people = sorted({r[1].split("/")[0] for r in rows})
    kw = dict(labeled=_labeled_examples(shared_data, [r for r in rows if r[1].split("/")[0] in set(people[:2])][:12]),
              unlabeled=_unlabeled_images(shared_data, people[2:4], 12), unlabeled_crop={"policy": "box"}, epochs=3,
              batch_size=4, discriminator_overrides={"filters": 8}, verbose=0)  # 3 steps per epoch
    name = "laplacekl_rcn_d.300w_sixteenth"
    full, _ = train_adversarial(name, out_dir=tmp_path / "full", **kw)

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train_adversarial(name, out_dir=tmp_path / "run", callbacks=[Kill()], **kw)
    assert sorted(p.name for p in (tmp_path / "run" / "ckpt").iterdir()) == ["epoch001.weights.h5", "epoch002.weights.h5"]
    resumed, hist = train_adversarial(name, out_dir=tmp_path / "run", **kw)
    assert len(hist["loss"]) == 3 and hist["generator_updates"] == 3 * 3  # the whole history, restart included
    assert json.loads((tmp_path / "run" / "config.json").read_text())["start_epoch"] == 2
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
    for p in ("discriminator.weights.h5", "tb"):
        assert (tmp_path / "run" / p).exists()


@pytest.mark.slow
def test_adversarial_train_with_face_image_folder_tfds(shared_data, tmp_path, monkeypatch):
    """lmkzoo.training.train.train on laplacekl_rcn_d with unlabeled="face_image_folder/folder": the real TFDS builder
    over three LFW person folders (whole-image boxes, cropped by unlabeled_crop); both networks update."""
    import shutil

    from datasets_tfds._common.testing import build
    from lmkzoo.training.adversarial import AdversarialLandmarkTrainer as Trainer
    from lmkzoo.training.optimizers import AdamL2
    from lmkzoo.training.train import train

    rows = _lfw_rows(shared_data)
    people = sorted({r[1].split("/")[0] for r in rows})
    manual = tmp_path / "unlabeled_manual"
    for person in people[2:5]:  # people not in the labeled set
        shutil.copytree(shared_data / "lfw_faces" / person, manual / person)
    n_unlabeled = len(list(manual.rglob("*.jpg")))
    data_dir = tmp_path / "tfds"
    builder = build("face_image_folder", data_dir, config="folder", manual_dir=manual)
    assert builder.info.splits["train"].num_examples == n_unlabeled >= 4
    labeled = _labeled_examples(shared_data, [r for r in rows if r[1].split("/")[0] in set(people[:2])][:16])

    snapshots = {}
    compile_ = Trainer.compile

    def compile_and_snapshot(self, g_optimizer, d_optimizer, g_loss, **kw):  # the weights just before training
        snapshots["g"] = [v.numpy().copy() for v in self.generator.trainable_variables]
        snapshots["d"] = [v.numpy().copy() for v in self.discriminator.trainable_variables]
        snapshots["optimizers"] = (g_optimizer, d_optimizer)
        return compile_(self, g_optimizer, d_optimizer, g_loss, **kw)

    monkeypatch.setattr(Trainer, "compile", compile_and_snapshot)
    steps, epochs = 3, 1
    generator, hist = train(
        "laplacekl_rcn_d.300w_sixteenth", data=(labeled, None), unlabeled="face_image_folder/folder", data_dir=data_dir,
        unlabeled_crop={"policy": "box", "scale": 0.6}, discriminator_overrides={"filters": 8},
        out_dir=tmp_path / "run", epochs=epochs, steps_per_epoch=steps, batch_size=2, verbose=0,
    )
    assert hist["generator_updates"] == hist["discriminator_updates"] == steps * epochs
    assert all(np.all(np.isfinite(hist[k])) for k in ("g_loss", "d_loss", "adv_loss", "loss"))
    # the recipe's {adam, weight_decay: 1e-5} is PyTorch's coupled decay, inside both optimizers
    assert all(isinstance(o, AdamL2) and o.weight_decay == pytest.approx(1e-5) for o in snapshots["optimizers"])
    # the discriminator is saved beside the generator: rebuild it and load its trained weights
    from lmkzoo.families.base import get_family
    from lmkzoo.registry import get_spec

    spec = get_spec("laplacekl_rcn_d.300w_sixteenth")
    disc = get_family("laplacekl").build_discriminator(spec, generator, filters=8)
    disc.load_weights(tmp_path / "run" / "discriminator.weights.h5")
    for key, variables in (("g", generator.trainable_variables), ("d", disc.trainable_variables)):
        assert len(snapshots[key]) == len(variables)
        changed = sum(not np.allclose(a, v.numpy()) for a, v in zip(snapshots[key], variables))
        assert changed >= len(variables) // 2, (key, changed, len(variables))


def test_adversarial_trainer_contract_errors():
    codec = LaplaceCodec(3, (32, 32))
    gen = RCN(codec, width=0.0625)
    with pytest.raises(InvalidArgumentError, match="discriminator takes"):
        AdversarialLandmarkTrainer(gen, PatchDiscriminator((32, 32, 4)))
    with pytest.raises(InvalidArgumentError, match="generator_objective"):
        AdversarialLandmarkTrainer(gen, PatchDiscriminator((32, 32, 6)), generator_objective="wasserstein")
    from lmkzoo.training.optimizers import AdamL2

    # decay in the trainer and in the optimizer would apply twice: refused, naming both values
    twice = AdversarialLandmarkTrainer(gen, PatchDiscriminator((32, 32, 6)), weight_decay=1e-5)
    with pytest.raises(InvalidArgumentError, match=r"g_optimizer has its own weight_decay=0.0001 .* weight_decay=1e-05"):
        twice.compile(AdamL2(weight_decay=1e-4), keras.optimizers.Adam(), LaplaceKL())
    images = tf.data.Dataset.from_tensor_slices(np.zeros((4, 32, 32, 3), np.float32)).batch(2)
    with pytest.raises(InvalidArgumentError, match="pairs"):
        make_adversarial_dataset(images, images)
    with pytest.raises(InvalidArgumentError, match=r"\(B, H, W, 3\)"):
        make_adversarial_dataset(tf.data.Dataset.from_tensor_slices((np.zeros((4, 32, 32, 3)), np.zeros(4))).batch(2),
                                 tf.data.Dataset.from_tensor_slices(np.zeros((4, 32, 32, 3))))
    from lmkzoo.training.train import train

    with pytest.raises(InvalidArgumentError, match="unlabeled"):
        train("laplacekl_rcn_d.300w_sixteenth", data=(images, None))


@pytest.mark.slow
def test_uint8_unlabeled_batches_and_nonsaturating_objective():
    """One step with uint8 unlabeled crops (normalised inside) and the non-saturating generator objective."""
    codec = LaplaceCodec(4, (32, 32))
    gen = RCN(codec, width=0.0625)
    disc = PatchDiscriminator((32, 32, 7), filters=4)
    trainer = AdversarialLandmarkTrainer(gen, disc, generator_objective="non_saturating", mean=(0.5,) * 3, std=(0.5,) * 3)
    trainer.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), GaussianKL())
    assert trainer.target_distribution == "gaussian"
    rng = np.random.default_rng(0)
    lab = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(4, 32, 32, 3)).astype(np.float32), codec.encode(rng.uniform(4, 28, (4, 4, 2)).astype(np.float32)))
    ).batch(2)
    unl = tf.data.Dataset.from_tensor_slices(rng.integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)).batch(2)
    before = [v.numpy().copy() for v in disc.trainable_variables]
    trainer.fit(make_adversarial_dataset(lab, unl), epochs=1, steps_per_epoch=2, verbose=0)
    assert int(trainer.d_optimizer.iterations) == int(trainer.g_optimizer.iterations) == 2
    assert any(not np.allclose(a, v.numpy()) for a, v in zip(before, disc.trainable_variables))
    # the trainer runs and decodes like its generator (evaluate_network relies on it)
    assert trainer.codec is codec and trainer(np.zeros((1, 32, 32, 3), np.float32))["heatmaps"].shape == (1, 32, 32, 4)
    back = check_config_round_trip(trainer)
    assert back.generator_objective == "non_saturating" and back.mean == (0.5,) * 3
    assert back.discriminator.count_params() == disc.count_params() and back.generator.count_params() == gen.count_params()


def test_unlabeled_dataset_crops(shared_data):
    from lmkzoo.data import transforms as T
    from lmkzoo.data.unlabeled import make_unlabeled_dataset

    fp = np.array([[90.0, 110.0], [150.0, 108.0], [121.0, 140.0], [98.0, 170.0], [146.0, 168.0]], np.float32)
    assert np.allclose(T.five_point_hull_box(fp, 2.0).numpy(), crops.five_point_hull_box(fp, 2.0), atol=1e-4)
    ds = _unlabeled_images(shared_data, ["Abdullah_Gul"], 3).map(lambda ex: {**ex, "five_points": tf.constant(fp)})
    out = make_unlabeled_dataset(ds, crop={"policy": "five_point_hull", "scale": 2.0}, input_size=(80, 80),
                                 mean=(0.5,) * 3, std=(0.5,) * 3, batch_size=2, shuffle_buffer=0, repeat=False)
    batch = next(iter(out))
    assert batch.shape == (2, 80, 80, 3) and batch.dtype == tf.float32 and float(tf.reduce_max(tf.abs(batch))) <= 1.0
    bare = ds.map(lambda ex: ex["image"])
    with pytest.raises(InvalidArgumentError, match="five_points"):
        make_unlabeled_dataset(bare, crop={"policy": "five_point_hull"}, input_size=(80, 80), mean=(0.5,) * 3, std=(0.5,) * 3)
    whole = make_unlabeled_dataset(bare, crop={"policy": "none"}, input_size=(40, 40), mean=(0.5,) * 3, std=(0.5,) * 3,
                                   batch_size=3, shuffle_buffer=0, repeat=False)
    assert next(iter(whole)).shape == (3, 40, 40, 3)


def test_unlabeled_crops_from_a_teachers_landmarks(shared_data):
    """Unlabeled examples with 68 teacher points (landmark_folder/lfw_teacher68) are cropped at the five points those
    give, like a 5-point detector's (the paper's MTCNN), and yield the very crop the five points themselves give."""
    from lmkzoo.data.unlabeled import make_unlabeled_dataset

    rows = _lfw_rows(shared_data)[:2]
    pts = np.stack([r[2] for r in rows]).astype(np.float32)
    images = [tf.io.decode_jpeg(tf.io.read_file(str(shared_data / "lfw_faces" / r[1])), channels=3).numpy() for r in rows]
    fp = np.stack([schemes.convert(p, "ibug68", "five_point") for p in pts]).astype(np.float32)
    kw = dict(crop={"policy": "five_point_hull", "scale": 2.0}, input_size=(80, 80), mean=(0.5,) * 3, std=(0.5,) * 3,
              batch_size=2, shuffle_buffer=0, repeat=False)
    with_landmarks = tf.data.Dataset.from_tensor_slices({"image": np.stack(images), "landmarks": pts})
    with_five = tf.data.Dataset.from_tensor_slices({"image": np.stack(images), "five_points": fp})
    got = next(iter(make_unlabeled_dataset(with_landmarks, scheme="ibug68", **kw)))
    want = next(iter(make_unlabeled_dataset(with_five, **kw)))
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2.5 / 127.5)  # float32 rounding of the five points
    assert float(tf.math.reduce_std(got)) > 0.1  # a face, not a blank crop
    with pytest.raises(InvalidArgumentError, match="68 landmarks.*'wflw98' \\(98 points\\)"):
        make_unlabeled_dataset(with_landmarks, scheme="wflw98", **kw)


def test_family_load_predict_with_uncertainty(shared_data):
    rows = _lfw_rows(shared_data)
    lm = lmkzoo.load("laplacekl_rcn", weights=None)
    assert isinstance(lm.network, RCN) and lm.network.count_params() == _table1_count(1.0)
    assert lm.spec.crop["policy"] == "five_point_hull" and lm.spec.input_size == (80, 80)
    img = tf.io.decode_jpeg(tf.io.read_file(str(shared_data / "lfw_faces" / rows[0][1])), channels=3).numpy()
    fp = schemes.get("ibug68").five_points(rows[0][2])
    faces = lm.predict(img, five_points=fp)
    assert len(faces) == 1
    face = faces[0]
    assert face.points.shape == (68, 2) and face.scores.shape == (68,) and face.covariance.shape == (68, 2, 2)
    assert np.all((face.scores > 0) & (face.scores <= 1))
    # image covariance = crop covariance · (side / 80)², the crop's scale; its Laplace scale is √(Σ_aa / 2)
    box = crops.five_point_hull_box(fp, 2.0)
    k = (box[2] - box[0]) / 80.0
    crop = lm.serving_model()(
        geometry.warp_affine(img, geometry.box_to_affine(box, 80), (80, 80))[None], training=False)
    assert np.allclose(face.covariance, crop["covariance"].numpy()[0] * k * k, rtol=1e-3, atol=1e-3)
    assert np.allclose(np.sqrt(face.covariance[:, 0, 0] / 2), crop["scale"].numpy()[0, :, 0] * k, rtol=1e-3)
    assert np.allclose(face.uncertainty, np.sqrt(2 * np.prod(crop["scale"].numpy()[0], -1)) * k, rtol=1e-3)
    # points are inside the crop box (soft-argmax is an expectation over the crop)
    assert np.all((face.points >= box[:2] - 1e-3) & (face.points <= box[2:] + 1e-3))
    # the other archs and width tags
    from lmkzoo.families.base import get_family
    from lmkzoo.inference.loader import build_network

    fam = get_family("laplacekl")
    soft = lmkzoo.get_spec("softargmax_rcn.300w_eighth")
    net = build_network(soft)
    assert net.width == 0.125 and isinstance(fam.default_loss(soft, net), SoftArgmaxL2)
    adv = lmkzoo.get_spec("laplacekl_rcn_d")
    assert isinstance(fam.default_loss(adv, net), LaplaceKL) and fam.adversarial_args(adv)["weight"] == 1e-3
    assert fam.build_discriminator(adv, net).inputs[0].shape[1:] == (80, 80, 71)
    assert fam.adversarial_args(lmkzoo.get_spec("laplacekl_rcn")) is None
    assert build_network(lmkzoo.get_spec("laplacekl_rcn.aflw")).num_points == 19
    with pytest.raises(WeightsUnavailableError):
        lmkzoo.load("laplacekl_rcn")  # no published weights


@pytest.mark.slow
def test_supervised_training_through_train_entry_point(shared_data, tmp_path):
    """``train()`` for a non-adversarial LaplaceKL-family model: five-point-hull crops, codec targets, family loss."""
    from lmkzoo.training.train import train

    rows = _lfw_rows(shared_data)
    people = sorted({r[1].split("/")[0] for r in rows})
    train_rows = [r for r in rows if r[1].split("/")[0] == people[0]][:8]
    val_rows = [r for r in rows if r[1].split("/")[0] == people[1]][:4]
    net, hist = train("softargmax_rcn.300w_sixteenth", data=(_labeled_examples(shared_data, train_rows),
                      _labeled_examples(shared_data, val_rows)), out_dir=tmp_path, epochs=2, batch_size=4,
                      steps_per_epoch=2, verbose=0)
    assert len(hist["loss"]) == 2 and np.isfinite(hist["val_nme"]).all()
    assert Path(tmp_path / "final.keras").exists()
