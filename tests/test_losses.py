import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from lmkzoo import losses
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.testing.round_trip import check_config_round_trip


def _g(loss, x):
    """Elementwise value of a point loss at scalar errors x (y_true 0, one coordinate used)."""
    x = np.asarray(x, dtype=np.float64)
    y_pred = np.stack([x, np.zeros_like(x)], -1)[None]  # (1, n, 2)
    out = loss.call(np.zeros_like(y_pred), y_pred)
    return keras.ops.convert_to_numpy(out)[0]


def _grad(loss, x):
    x = tf.Variable(np.asarray(x, dtype=np.float64))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(loss.call(tf.zeros((1, x.shape[0], 2), tf.float64), tf.stack([x, tf.zeros_like(x)], -1)[None]))
    return tape.gradient(y, x).numpy()


def test_l1_l2_smoothl1_hand_values():
    x = [0.0, 0.5, 2.0]
    assert np.allclose(_g(losses.L1(), x), [0.0, 0.5, 2.0])
    assert np.allclose(_g(losses.L2(), x), [0.0, 0.125, 2.0])
    assert np.allclose(_g(losses.SmoothL1(), x), [0.0, 0.125, 1.5])
    assert np.allclose(_g(losses.L1(scale=10), x), [0.0, 5.0, 20.0])


def test_reduction_and_visibility_weights():
    y_true = np.zeros((2, 3, 2), np.float32)
    y_pred = np.ones((2, 3, 2), np.float32)
    y_pred[1] *= 3
    loss = losses.L1()
    # per landmark: image 0 -> 2, image 1 -> 6; mean over 6 landmarks = 4
    assert np.isclose(float(loss(y_true, y_pred)), 4.0)
    w = np.array([[1, 1, 1], [0, 0, 0]], np.float32)
    assert np.isclose(float(loss(y_true, y_pred, sample_weight=w)), 1.0)  # sum 6 / 6 elements


def test_wing_matches_formula_and_jumps_in_gradient_at_w():
    w, eps = 10.0, 2.0
    loss = losses.Wing(w=w, epsilon=eps)
    c = w - w * math.log(1 + w / eps)
    assert np.allclose(_g(loss, [1.0, 15.0]), [w * math.log(1 + 1 / eps), 15 - c])
    # value continuous at w, gradient jumps from w/(w+eps) to 1
    assert np.allclose(_g(loss, [w - 1e-9]), _g(loss, [w + 1e-9]), atol=1e-6)
    g_lo, g_hi = _grad(loss, [w - 1e-6, w + 1e-6])
    assert np.isclose(g_lo, w / (w + eps), atol=1e-4) and np.isclose(g_hi, 1.0)


def test_smooth_wing_continuity_at_t_and_w():
    t, w, eps = 0.01, 10.0, 2.0
    loss = losses.SmoothWing(t=t, w=w, epsilon=eps)
    d = 1e-9
    # values continuous at t and at w
    v = _g(loss, [t - d, t + d, w - d, w + d])
    assert abs(v[0] - v[1]) < 1e-6
    assert abs(v[2] - v[3]) < 1e-6
    # gradients continuous at t ((w+eps)/(eps+t)) and at w (1)
    gr = _grad(loss, [t - d, t + d, w - d, w + d])
    assert np.allclose(gr[:2], (w + eps) / (eps + t), rtol=1e-5)
    assert np.allclose(gr[2:], 1.0, rtol=1e-5)
    # smooth at zero: gradient -> 0, and symmetric
    g0 = _grad(loss, [1e-7, -1e-7])
    assert np.allclose(g0, [2 * loss.s * 1e-7, -2 * loss.s * 1e-7])
    # the paper's printed c2 = s t^2 would leave a small value jump at t; ours is its documented fix
    s = (w + eps) / (2 * t * (eps + t))
    paper_jump = (w + eps) * math.log(1 + t / eps) - 2 * s * t * t
    assert 1e-4 < paper_jump < 2e-4
    assert np.isclose(loss.c2, s * t * t + paper_jump)


def test_smooth_wing_inner_is_quadratic():
    loss = losses.SmoothWing()
    x = np.array([0.001, 0.005])
    assert np.allclose(_g(loss, x), loss.s * x**2)


def test_bad_parameters():
    with pytest.raises(InvalidArgumentError, match="0 < t < w"):
        losses.SmoothWing(t=20, w=10)
    with pytest.raises(InvalidArgumentError, match="scale"):
        losses.L1(scale=0)
    with pytest.raises(InvalidArgumentError):
        losses.Wing(w=-1)


@pytest.mark.parametrize("cls", [losses.L1, losses.L2, losses.SmoothL1, losses.Wing, losses.SmoothWing, losses.HeatmapMSE])
def test_config_round_trip(cls):
    assert type(check_config_round_trip(cls(scale=2.0), via=keras.losses)) is cls


def test_heatmap_mse_per_landmark():
    y_true = np.zeros((2, 4, 4, 3), np.float32)
    y_pred = np.zeros((2, 4, 4, 3), np.float32)
    y_pred[0, 0, 0, 1] = 4.0  # one pixel of landmark 1, image 0: 16 / 16 pixels = 1
    per = keras.ops.convert_to_numpy(losses.HeatmapMSE().call(y_true, y_pred))
    assert per.shape == (2, 3)
    assert np.allclose(per, [[0, 1, 0], [0, 0, 0]])
    assert np.isclose(float(losses.HeatmapMSE()(y_true, y_pred)), 1 / 6)


# ------------------------------------------------------------------------------------------ invisible NaN targets
def _nan_case(name, rng):
    """(loss, y_true with a NaN / inf target on an invisible point, the same with finite values there, y_pred)."""
    b, k = 2, 3
    vis = np.ones((b, k), np.float32)
    vis[0, 1] = 0.0  # the invisible point
    if name in ("laplace_kl", "gaussian_kl", "softargmax_l2"):
        loss = {"laplace_kl": losses.LaplaceKL, "gaussian_kl": losses.GaussianKL, "softargmax_l2": losses.SoftArgmaxL2}[name]()
        pts = rng.uniform(2, 14, (b, k, 2)).astype(np.float32)
        bad = pts.copy()
        bad[0, 1] = [np.nan, np.inf]
        return loss, {"landmarks": bad, "visible": vis}, {"landmarks": pts, "visible": vis}, \
            {"heatmaps": rng.normal(size=(b, 16, 16, k)).astype(np.float32)}
    if name == "gll":
        from lmkzoo.losses import GaussianLogLikelihood

        s = 2
        pts = rng.uniform(2, 14, (b, k, 2)).astype(np.float32)
        bad = pts.copy()
        bad[0, 1] = [np.nan, 5.0]
        pred = {"stack_heatmaps": rng.uniform(0, 1, (b, 16, 16, s * k)).astype(np.float32),
                "stack_cholesky": rng.normal(size=(b, s, k, 3)).astype(np.float32)}
        return GaussianLogLikelihood(), {"points": bad, "visible": vis}, {"points": pts, "visible": vis}, pred
    if name == "heatmap":
        hm = rng.uniform(0, 1, (b, 8, 8, k)).astype(np.float32)
        bad = hm.copy()
        bad[0, :, :, 1] = np.nan  # what a NaN coordinate renders to
        return losses.HeatmapLoss(), {"heatmaps": bad, "visible": vis}, {"heatmaps": hm, "visible": vis}, \
            {"heatmaps": rng.normal(size=(b, 8, 8, k)).astype(np.float32)}
    if name == "pip":
        c, g = 2, 4
        true = {"cell": rng.integers(0, g * g, (b, k)).astype(np.int32), "visible": vis,
                "offsets": rng.uniform(0, 1, (b, k, 2)).astype(np.float32),
                "neighbor_offsets": rng.uniform(-1, 1, (b, k, c, 2)).astype(np.float32),
                "neighbor_visible": np.repeat(vis[..., None], c, -1)}
        bad = {**true, "offsets": true["offsets"].copy(), "neighbor_offsets": true["neighbor_offsets"].copy()}
        bad["offsets"][0, 1] = np.nan
        bad["neighbor_offsets"][0, 1] = np.inf
        pred = {key: rng.normal(size=(b, g, g, k)).astype(np.float32) for key in ("scores", "offset_x", "offset_y")}
        pred.update({key: rng.normal(size=(b, g, g, k * c)).astype(np.float32) for key in ("neighbor_x", "neighbor_y")})
        return losses.PIPLoss(), bad, true, pred
    if name == "coordinate":
        from lmkzoo.losses.coordinate_loss import CoordinateLoss

        pts = rng.uniform(0, 1, (b, k, 2)).astype(np.float32)
        bad = pts.copy()
        bad[0, 1] = np.nan
        return CoordinateLoss(scale=(64.0, 64.0)), {"coordinates": bad, "visible": vis}, \
            {"coordinates": pts, "visible": vis}, {"coordinates": rng.uniform(0, 1, (b, k, 2)).astype(np.float32)}
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["laplace_kl", "gaussian_kl", "softargmax_l2", "gll", "heatmap", "pip", "coordinate"])
def test_nan_target_on_an_invisible_point_leaves_loss_and_gradients_finite(name):
    """A NaN / inf target on an invisible point: the loss and its gradients equal those with any finite value
    there (the point adds nothing), instead of NaN (0 · NaN)."""
    loss, y_bad, y_good, y_pred = _nan_case(name, np.random.default_rng(0))
    results = []
    for y_true in (y_bad, y_good):
        pred = {key: tf.Variable(v) for key, v in y_pred.items()}
        with tf.GradientTape() as tape:
            value = loss(y_true, pred)
        grads = tape.gradient(value, list(pred.values()))
        grads = [np.zeros(v.shape, np.float32) if g is None else np.asarray(tf.convert_to_tensor(g)) for g, v in
                 zip(grads, pred.values())]
        results.append((float(value), grads))
    (v_bad, g_bad), (v_good, g_good) = results
    assert np.isfinite(v_bad) and v_bad == pytest.approx(v_good, rel=1e-6), (v_bad, v_good)
    for a, b in zip(g_bad, g_good):
        assert np.all(np.isfinite(a)) and np.allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(np.abs(g).max() > 0 for g in g_bad)  # the visible points still train
