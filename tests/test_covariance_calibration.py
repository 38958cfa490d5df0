"""The covariance calibration factor: one number in the codec of the families that predict covariances (UGLLI,
LaplaceKL), applied in decode only (the training loss sees the raw estimate), kept through get_config."""

import numpy as np
import pytest

from lmkzoo.codecs import LaplaceCodec
from lmkzoo.codecs.uglli_codec import UGLLICodec
from lmkzoo.errors import InvalidArgumentError


def test_uglli_decode_scales_the_covariance_only():
    rng = np.random.default_rng(0)
    out = {"heatmaps": rng.random((2, 16, 16, 5)).astype("float32"),
           "cholesky": rng.normal(size=(2, 5, 3)).astype("float32")}
    plain, calibrated = (UGLLICodec(5, (64, 64), covariance_scale=s) for s in (1.0, 2.5))
    a, b = plain(out), calibrated(out)
    np.testing.assert_allclose(np.asarray(b["covariance"]), 2.5 * np.asarray(a["covariance"]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(b["landmarks"]), np.asarray(a["landmarks"]))
    assert UGLLICodec.from_config(calibrated.get_config()).covariance_scale == 2.5


def test_laplace_decode_scales_covariance_and_laplace_scale_consistently():
    heatmaps = np.random.default_rng(1).normal(size=(2, 80, 80, 4)).astype("float32")
    plain, calibrated = LaplaceCodec(4, (80, 80)), LaplaceCodec(4, (80, 80), covariance_scale=4.0)
    a, b = plain({"heatmaps": heatmaps}), calibrated({"heatmaps": heatmaps})
    np.testing.assert_allclose(np.asarray(b["covariance"]), 4.0 * np.asarray(a["covariance"]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(b["scale"]), 2.0 * np.asarray(a["scale"]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(b["landmarks"]), np.asarray(a["landmarks"]))
    assert LaplaceCodec.from_config(calibrated.get_config()).covariance_scale == 4.0


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "big", None])
def test_bad_scales_are_refused(bad):
    with pytest.raises(InvalidArgumentError, match="covariance_scale must be a finite number > 0"):
        LaplaceCodec(4, (80, 80), covariance_scale=bad)


def test_zoo_builder_passes_the_scale_to_the_codec():
    from lmkzoo.inference.loader import build_network
    from lmkzoo.registry import get_spec
    from lmkzoo.testing.tiny import tiny_spec

    spec = tiny_spec("laplacekl_rcn.300w", 32, width=0.0625, covariance_scale=1.7)
    assert build_network(spec).codec.covariance_scale == 1.7
    assert build_network(get_spec("uglli_hg.300w"), num_stacks=1, channels=16, covariance_scale=0.5).codec.covariance_scale == 0.5
