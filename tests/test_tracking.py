"""Video helpers: One Euro filter, frame sources, the jitter metric."""

import numpy as np
import pytest

from lmkzoo.errors import InvalidArgumentError, InvalidImageError
from lmkzoo.inference.tracking import OneEuroFilter, box_iou, iter_frames, jitter


def test_one_euro_smooths_noise_and_follows_motion():
    rng = np.random.default_rng(0)
    dt = 1 / 30
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    still = np.array([[10.0, 20.0]]) + rng.normal(0, 1.0, (120, 1, 2))
    out = np.stack([f(x, dt) for x in still])
    assert jitter(out[10:]) < 0.3 * jitter(still[10:])  # much less frame-to-frame motion
    assert np.allclose(out[60:].mean(0), [[10, 20]], atol=0.5)  # no bias
    # a constant signal passes unchanged; the first sample is returned as is
    g = OneEuroFilter()
    assert np.allclose(g(np.ones(3), dt), 1) and np.allclose(g(np.ones(3), dt), 1)
    # a step: high beta follows faster than beta 0
    step = [np.zeros(1)] * 5 + [np.full(1, 100.0)] * 10
    slow, fast = OneEuroFilter(beta=0.0), OneEuroFilter(beta=1.0)
    ys = [slow(x, dt) for x in step][-8]
    yf = [fast(x, dt) for x in step][-8]
    assert yf[0] > ys[0] and yf[0] > 50
    f.reset()
    assert np.allclose(f(np.array([5.0]), dt), 5.0)


def test_one_euro_bad_parameters():
    with pytest.raises(InvalidArgumentError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0)
    with pytest.raises(InvalidArgumentError, match="beta"):
        OneEuroFilter(beta=-1)
    f = OneEuroFilter()
    f(np.zeros(2), 0.1)
    with pytest.raises(InvalidArgumentError, match="dt"):
        f(np.zeros(2), 0.0)


def test_jitter_and_iou():
    p = np.zeros((3, 2, 2))
    p[1, :, 0] = 3.0
    p[2, :, 0] = 3.0
    p[2, :, 1] = 4.0
    assert jitter(p) == pytest.approx((3 + 4) / 2)
    assert jitter(p, normalize_by=2.0) == pytest.approx(1.75)
    with pytest.raises(InvalidArgumentError):
        jitter(np.zeros((1, 2, 2)))
    assert box_iou([0, 0, 2, 2], [1, 0, 3, 2]) == pytest.approx(1 / 3)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0


def test_frames_from_a_file_an_array_and_bad_files(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    for i in range(5):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, :, 2] = 40 * i  # red in RGB grows (BGR channel 2)
        w.write(frame)
    w.release()
    frames, fps = iter_frames(path)
    frames = list(frames)
    assert len(frames) == 5 and fps == pytest.approx(25.0) and frames[0].shape == (48, 64, 3)
    assert frames[4][..., 0].mean() > frames[1][..., 0].mean() + 50  # decoded as RGB
    arr, fps = iter_frames(np.zeros((3, 8, 8, 3), np.uint8), max_frames=2)
    assert len(list(arr)) == 2 and fps is None
    with pytest.raises(InvalidImageError, match="not found"):
        iter_frames(tmp_path / "missing.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(InvalidImageError):
        list(iter_frames(tmp_path / "bad.mp4")[0])
