import numpy as np
import pytest

from lmkzoo import metrics, schemes
from lmkzoo.errors import InvalidArgumentError, SchemeMismatchError, ShapeMismatchError


def _face68(iod=50.0):
    p = np.zeros((68, 2))
    p[:, 0] = np.linspace(0, 100, 68)
    p[:, 1] = 50
    p[36] = [25, 40]
    p[45] = [25 + iod, 40]
    p[36:42, 1] = 40
    p[42:48, 1] = 40
    return p


def test_nme_inter_ocular_hand_value():
    gt = _face68(50.0)
    pred = gt.copy()
    pred[0] += [3, 4]  # error 5 on one point of 68
    e = metrics.nme(pred, gt, scheme="ibug68")
    assert np.isclose(e, 5 / 68 / 50)
    batch = metrics.nme(np.stack([pred, gt]), np.stack([gt, gt]), scheme=schemes.get("ibug68"))
    assert batch.shape == (2,) and np.allclose(batch, [5 / 68 / 50, 0])


def test_nme_inter_pupil_bbox_diagonal_image():
    gt = _face68()
    pred = gt + [0, 2]  # every point off by 2
    ip = schemes.get("ibug68").norm_distance(gt, "inter_pupil")
    assert np.isclose(metrics.nme(pred, gt, scheme="ibug68", norm="inter_pupil"), 2 / ip)
    box = np.array([0.0, 0.0, 40.0, 90.0])  # sqrt(w h) = 60, diagonal = sqrt(40^2+90^2)
    assert np.isclose(metrics.nme(pred, gt, norm="bbox", boxes=box), 2 / 60)
    assert np.isclose(metrics.nme(pred, gt, norm="diagonal", boxes=box), 2 / np.hypot(40, 90))
    # without boxes the tight box of the ground truth is used: 100 x 10
    assert np.isclose(metrics.nme(pred, gt, norm="bbox"), 2 / np.sqrt(100 * 10))
    assert np.isclose(metrics.nme(pred, gt, norm="image", image_size=256), 2 / 256)
    assert np.isclose(metrics.nme(pred, gt, norm="image", image_size=(64, 256)), 2 / 128)
    assert np.allclose(metrics.nme(np.stack([pred, pred]), np.stack([gt, gt]), norm=np.array([1.0, 4.0])), [2, 0.5])


def test_nme_visibility_mask():
    gt = _face68()
    pred = gt.copy()
    pred[:34] += [10, 0]
    vis = np.zeros(68, bool)
    vis[34:] = True
    assert np.isclose(metrics.nme(pred, gt, scheme="ibug68", visible=vis), 0.0)
    vis[0] = True  # one bad point among 35 visible
    assert np.isclose(metrics.nme(pred, gt, scheme="ibug68", visible=vis), 10 / 35 / 50)
    none = np.zeros((1, 68), bool)
    assert np.isnan(metrics.nme(pred[None], gt[None], scheme="ibug68", visible=none)[0])


def test_zero_distance_gives_nan_not_an_exception():
    gt = np.stack([_face68(50.0), _face68(0.0)])  # second face: eye corners coincide
    out = metrics.nme(gt + 1, gt, scheme="ibug68")
    assert np.isfinite(out[0]) and np.isnan(out[1])
    assert metrics.failure_rate(out, 0.5) == 0.5  # NaN counts as a failure


def test_bad_inputs_raise_clear_errors():
    gt = _face68()
    with pytest.raises(ShapeMismatchError, match=r"\(68, 2\) and \(67, 2\)"):
        metrics.nme(gt, gt[:67], scheme="ibug68")
    with pytest.raises(SchemeMismatchError, match="'wflw98' has 98 points but the arrays have 68"):
        metrics.nme(gt, gt, scheme="wflw98")
    bad = gt.copy()
    bad[5, 1] = np.nan
    with pytest.raises(InvalidArgumentError, match="point 5"):
        metrics.nme(bad, gt, scheme="ibug68")
    with pytest.raises(InvalidArgumentError, match="norm must be one of"):
        metrics.nme(gt, gt, norm="interocular")
    with pytest.raises(InvalidArgumentError, match="needs a scheme"):
        metrics.nme(gt, gt)
    with pytest.raises(InvalidArgumentError, match="image_size"):
        metrics.nme(gt, gt, norm="image")
    with pytest.raises(ShapeMismatchError, match="visible"):
        metrics.nme(gt, gt, scheme="ibug68", visible=np.ones(10, bool))
    with pytest.raises(ShapeMismatchError, match="boxes"):
        metrics.nme(np.stack([gt, gt]), np.stack([gt, gt]), norm="bbox", boxes=np.ones((3, 4)))
    with pytest.raises(ShapeMismatchError):
        metrics.nme(np.zeros((68, 3)), np.zeros((68, 3)))
    three = np.stack([gt] * 3)
    with pytest.raises(ShapeMismatchError, match=r"image_size must be .* for 3 image\(s\); got shape \(4,\)"):
        metrics.nme(three, three, norm="image", image_size=[1, 2, 3, 4])
    with pytest.raises(ShapeMismatchError, match=r"norm \(per-image distances\) .* got shape \(5,\)"):
        metrics.nme(three, three, norm=np.ones(5))
    with pytest.raises(InvalidArgumentError, match="pred must be a numeric array"):
        metrics.nme([[1, 2], [3]], gt[:2], norm="bbox")
    with pytest.raises(InvalidArgumentError, match="gt must be a numeric array"):
        metrics.nme(gt, "face", norm="bbox")
    with pytest.raises(InvalidArgumentError, match="boxes hold a non-finite value at image 1"):
        metrics.nme(three, three, norm="bbox", boxes=[[0, 0, 9, 9], [0, np.nan, 9, 9], [0, 0, 9, 9]])


def test_failure_rate_and_auc_hand_values():
    e = np.array([0.01, 0.05, 0.09, 0.2])
    assert metrics.failure_rate(e, 0.08) == 0.5
    assert metrics.failure_rate(e, 0.1) == 0.25
    # exact area: mean(max(c - e, 0)) / c = (0.07 + 0.03 + 0 + 0) / 4 / 0.08
    assert np.isclose(metrics.auc(e, 0.08), (0.07 + 0.03) / 4 / 0.08)
    assert np.isclose(metrics.auc(np.zeros(3), 0.1), 1.0)
    assert metrics.auc(np.full(3, 0.5), 0.1) == 0.0
    # agrees with a fine numerical integration of the CED curve (what PIPNet/LUVLi do)
    rng = np.random.default_rng(0)
    e = rng.uniform(0, 0.12, 500)
    x, y = metrics.ced(e, 0.1, step=1e-5)
    assert np.isclose(metrics.auc(e, 0.1), np.trapezoid(y, x) / 0.1, atol=1e-4)
    with pytest.raises(InvalidArgumentError, match="cutoff"):
        metrics.auc(e, 0)
    with pytest.raises(InvalidArgumentError, match="empty"):
        metrics.failure_rate([])


def test_ced_curve_and_plot(tmp_path):
    e = np.array([0.0, 0.02, 0.04, np.nan])
    x, y = metrics.ced(e, 0.04, step=0.01)
    assert np.allclose(x, [0, 0.01, 0.02, 0.03, 0.04])
    assert np.allclose(y, [0.25, 0.25, 0.5, 0.5, 0.75])
    fig = metrics.plot_ced({"a": e, "b": e / 2}, 0.04)
    out = tmp_path / "ced.png"
    fig.savefig(out)
    assert out.stat().st_size > 1000
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("a: NME") and "AUC" in labels[0]


def test_point_var():
    gt = _face68()
    shifted = gt + [3.0, -2.0]
    assert np.isclose(metrics.point_var(shifted, gt, scheme="ibug68"), 0.0)  # consistent shape: no variance
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, gt.shape)
    pv = metrics.point_var(gt + noise, gt, scheme="ibug68")
    e = noise / 50
    assert np.isclose(pv, np.mean(np.sum((e - e.mean(0)) ** 2, axis=1)))
    assert pv > 0


def test_point_errors():
    gt = _face68()
    pred = gt.copy()
    pred[3] += [3, 4]
    pe = metrics.point_errors(pred, gt)
    assert pe.shape == (68,) and pe[3] == 5 and pe.sum() == 5


def test_ellipse_coverage_and_covariance_scale_on_sampled_gaussians():
    from lmkzoo.metrics.uncertainty import GAUSSIAN_COVERAGE, ellipse_coverage, fit_covariance_scale

    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 68, 2, 2))
    cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(2)
    pred = (np.linalg.cholesky(cov) @ rng.normal(size=(300, 68, 2, 1)))[..., 0]
    gt = np.zeros_like(pred)
    cover = ellipse_coverage(pred, gt, cov)
    assert abs(cover["coverage_1sigma"] - GAUSSIAN_COVERAGE[1]) < 0.01 and abs(cover["coverage_2sigma"] - 0.865) < 0.01
    # over-confident ellipses (a third of the true covariance) are found out and the scale undoes it
    assert ellipse_coverage(pred, gt, cov / 3)["coverage_2sigma"] < 0.6
    s = fit_covariance_scale(pred, gt, cov / 3)
    assert abs(s - 3.0) < 0.15
    assert abs(ellipse_coverage(pred, gt, s * cov / 3)["coverage_2sigma"] - 0.865) < 0.005
    vis = np.ones(pred.shape[:2], bool)
    vis[:, 0] = False
    assert ellipse_coverage(pred, gt, cov, visible=vis)["num_points"] == 300 * 67
    with pytest.raises(InvalidArgumentError, match="positive-definite"):
        ellipse_coverage(pred, gt, np.zeros_like(cov))
