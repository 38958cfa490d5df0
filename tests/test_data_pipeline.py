"""lmkzoo.data: crop policies (TF twins of lmkzoo.crops), augmentation that keeps points on their image content
(flips included), paper presets, deterministic evaluation, sharding, unlabelled sources, TFDS end to end."""

import math

import numpy as np
import pytest
import tensorflow as tf

from lmkzoo import crops, geometry, schemes
from lmkzoo.data import transforms as T
from lmkzoo.data.pipeline import make_dataset, make_example_fn
from lmkzoo.data.presets import PRESETS, get_preset
from lmkzoo.errors import InvalidArgumentError

SIZE = 96
RED, GREEN, BLUE = 0, 1, 2
SIDE_CHANNEL = {-1: RED, 0: GREEN, 1: BLUE}


def _blob_face(scheme="aflw19", size=(128, 128), box=(20, 20, 108, 108), radius=3):
    """A dark image with a disc at every landmark, coloured by the point's side (left red, right blue, midline
    green): a point that drifts off its content, or a flip without the left/right permutation, lands on the
    wrong colour."""
    import cv2

    from datasets_tfds._common.synthetic import face_points

    sch = schemes.get(scheme)
    pts = face_points(scheme, box)
    img = np.full((size[1], size[0], 3), 25, np.uint8)
    colors = {-1: (230, 30, 30), 0: (30, 220, 30), 1: (30, 30, 230)}
    for (x, y), side in zip(pts, sch.sides):
        cv2.circle(img, (int(x), int(y)), radius, colors[int(side)], -1)
    return img, pts


def _example(img, pts, box=(20, 20, 108, 108)):
    return {"image": tf.constant(img), "landmarks": tf.constant(pts, tf.float32), "visible": tf.ones(len(pts)),
            "bbox": tf.constant(box, tf.float32)}


def _draws(fn, ex, n):
    """``n`` outputs of the (random) example function, traced once in a tf.data map (fast, unlike eager calls)."""
    ds = tf.data.Dataset.from_tensors(ex).repeat(n).enumerate()
    return list(ds.map(lambda i, e: fn(e, tf.stack([tf.cast(i, tf.int64), tf.constant(7, tf.int64)]))).as_numpy_iterator())


def _colour_at(image, p):
    i, j = int(math.floor(p[0])), int(math.floor(p[1]))
    return int(np.argmax(image[j, i].astype(int)))


# --------------------------------------------------------------------------------------------- crop policies
@pytest.mark.parametrize("crop", [
    {"policy": "box", "scale": 1.2},
    {"policy": "box", "scale": [1.1, 1.3], "shift": [0.0, 0.1], "square": True},
    {"policy": "five_point"},
    {"policy": "five_point", "template_scale": 0.7, "template_shift": 0.05},
    {"policy": "five_point_hull", "scale": 2.0},
    {"policy": "none"},
])
def test_tf_crop_policies_equal_the_numpy_ones(crop):
    img, pts = _blob_face("ibug68", box=(24, 18, 104, 110))
    box = np.array([22.0, 16.0, 106.0, 112.0])
    out = make_example_fn(crop=crop, input_size=(80, 64), scheme="ibug68")(_example(img, pts, box))
    sch = schemes.get("ibug68")
    ref = crops.crop_affine(crop, (80, 64), box=box, five_points=sch.five_points(pts), image_size=(128, 128))
    np.testing.assert_allclose(out["affine"].numpy(), ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out["inverse_affine"].numpy(), geometry.invert_affine(ref), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out["landmarks"].numpy(), geometry.apply_affine(pts, ref), atol=2e-3)


def test_five_points_from_the_example_win_over_the_landmarks():
    img, pts = _blob_face("ibug68")
    ex = _example(img, pts)
    fp = schemes.get("ibug68").five_points(pts) + np.array([3.0, -2.0])  # e.g. detector points
    ex["five_points"] = tf.constant(fp, tf.float32)
    out = make_example_fn(crop={"policy": "five_point"}, input_size=(64, 64), scheme="ibug68")(ex)
    np.testing.assert_allclose(out["affine"].numpy(), geometry.align_five_points(fp, (64, 64)), atol=1e-3)
    with pytest.raises(InvalidArgumentError, match="five points"):
        make_example_fn(crop={"policy": "five_point"}, input_size=(64, 64), scheme="menpo39")(
            _example(img[:, :, :], np.zeros((39, 2), np.float32)))


def test_eval_crop_keeps_points_on_their_content():
    img, pts = _blob_face()
    out = make_example_fn(crop={"policy": "box", "scale": 1.3}, input_size=(SIZE, SIZE), scheme="aflw19")(_example(img, pts))
    crop = out["images"].numpy()
    for p, side in zip(out["landmarks"].numpy(), schemes.get("aflw19").sides):
        assert _colour_at(crop, p) == SIDE_CHANNEL[int(side)]


# --------------------------------------------------------------------------------------------- augmentation
STRONG = {"flip": {"p": 0.5}, "rotate": {"p": 1.0, "max_deg": 30.0}, "scale": {"p": 1.0, "range": [0.75, 1.25]},
          "translate": {"p": 1.0, "max_frac": 0.1}, "channel_scale": {"p": 1.0, "range": [0.7, 1.3]}}


@pytest.mark.parametrize("augment", [STRONG, "uglli", "earp_geometry"])
def test_augmented_points_stay_on_the_same_image_content(augment):
    """Strong random geometry (rotation, zoom, shift, flips): every point inside the crop still sits on its own
    coloured disc, and after a flip the image-left points sit on the discs that were the face's right side
    (blue), i.e. the flip permutation swaps left and right semantics."""
    if augment == "earp_geometry":  # Earp's geometry and flips without the colour noise (it would mix colours)
        augment = {k: v for k, v in PRESETS["earp"].items() if k in ("flip", "rotate")}
    img, pts = _blob_face()
    fn = make_example_fn(crop={"policy": "box", "scale": 1.3}, input_size=(SIZE, SIZE), scheme="aflw19",
                         augment=augment, training=True)
    ex = _example(img, pts)
    sides = schemes.get("aflw19").sides
    n_flipped = n_checked = 0
    for out in _draws(fn, ex, 40):
        crop, p, flipped = out["images"], out["landmarks"], bool(out["flipped"])
        n_flipped += flipped
        for q, side in zip(p, sides):
            if not (3 <= q[0] <= SIZE - 3 and 3 <= q[1] <= SIZE - 3):
                continue
            # an image-left point after a flip is the mirrored right point: it sits on a right (blue) disc
            expected = SIDE_CHANNEL[int(-side if flipped else side)]
            assert _colour_at(crop, q) == expected, (q, side, flipped)
            n_checked += 1
    assert n_checked > 40 * 15
    if get_preset(augment if isinstance(augment, str) else None).get("flip") or (isinstance(augment, dict) and "flip" in augment):
        assert 8 <= n_flipped <= 32  # p = 0.5
    else:
        assert n_flipped == 0


def test_flip_equals_the_scheme_flip():
    img, pts = _blob_face("ibug68")
    ex = _example(img, pts)
    crop = {"policy": "box", "scale": 1.2}
    base = make_example_fn(crop=crop, input_size=(SIZE, SIZE), scheme="ibug68")(ex)
    flip = make_example_fn(crop=crop, input_size=(SIZE, SIZE), scheme="ibug68", augment={"flip": {"p": 1.0}},
                           training=True)(ex, seed=[0, 0])
    assert bool(flip["flipped"])
    np.testing.assert_allclose(flip["landmarks"].numpy(), schemes.get("ibug68").flip(base["landmarks"].numpy(), SIZE),
                               atol=1e-3)
    # the mirrored crop, up to float rounding of the bilinear sampler (±1 grey level)
    diff = np.abs(flip["images"].numpy().astype(int) - base["images"].numpy()[:, ::-1].astype(int))
    assert diff.max() <= 1


def test_keep_inside_shrinks_only_when_needed():
    img, pts = _blob_face(box=(4, 4, 124, 124))
    fn = make_example_fn(crop={"policy": "none"}, input_size=(SIZE, SIZE), scheme="aflw19",
                         augment={"rotate": {"p": 1.0, "max_deg": 45.0}, "keep_inside": {"margin": 1.0}}, training=True)
    for r in _draws(fn, _example(img, pts), 10):
        p = r["landmarks"]
        assert p.min() >= 1.0 - 1e-3 and p.max() <= SIZE - 1.0 + 1e-3
    m = tf.constant([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    inside = tf.constant([[10.0, 10.0], [50.0, 60.0]])
    np.testing.assert_allclose(T.keep_points_inside(m, inside, tf.ones(2), (96, 96)).numpy(), m.numpy())


def _geometry_samples(preset, n=300):
    """(angle in degrees, content zoom, translation (crop px), flipped) of ``n`` draws: the augmentation affine
    relative to the deterministic crop."""
    img, pts = _blob_face(box=(44, 44, 84, 84))  # a small face, so keep_inside never triggers
    ex = _example(img, pts, box=(44, 44, 84, 84))
    crop = {"policy": "box", "scale": 1.0}
    base = make_example_fn(crop=crop, input_size=(SIZE, SIZE), scheme="aflw19")(ex)["affine"].numpy()
    fn = make_example_fn(crop=crop, input_size=(SIZE, SIZE), scheme="aflw19", augment=preset, training=True)
    out = []
    for r in _draws(fn, ex, n):
        g = geometry.compose_affine(geometry.invert_affine(base), r["affine"])  # crop → augmented crop
        a = g[:, :2].copy()
        if bool(r["flipped"]):
            a = a @ np.diag([-1.0, 1.0])
        zoom = math.sqrt(abs(np.linalg.det(a)))
        centre = geometry.apply_affine(np.array([[SIZE / 2, SIZE / 2]]), g)[0] - SIZE / 2
        out.append((math.degrees(math.atan2(a[1, 0], a[0, 0])), zoom, centre, bool(r["flipped"])))
    return out


def test_presets_follow_their_papers():
    earp = _geometry_samples("earp")
    ang = np.array([s[0] for s in earp])
    assert np.abs(ang).max() <= 15.0 + 1e-3 and np.abs(ang).max() > 12 and np.std(ang) > 6  # U(-15, 15) always
    assert np.allclose([s[1] for s in earp], 1.0, atol=1e-4)  # no scale
    assert np.abs(np.array([s[2] for s in earp])).max() < 1e-3  # no shift
    assert 0.4 < np.mean([s[3] for s in earp]) < 0.6  # flip p 0.5

    uglli = _geometry_samples("uglli")
    ang = np.array([s[0] for s in uglli])
    zoom = np.array([s[1] for s in uglli])
    assert np.abs(ang).max() <= 30.0 + 1e-3 and 11 < np.std(ang) < 17  # N(0, 15) clipped at 30
    assert zoom.min() >= 1 / 1.25 - 1e-4 and zoom.max() <= 1 / 0.75 + 1e-4  # box scale 1 + N(0, 0.125) in ±0.25
    assert 0.06 < np.std(1 / zoom) < 0.15
    assert not any(s[3] for s in uglli)  # LUVLi never flips

    pip = _geometry_samples("pipnet")
    ang = np.array([s[0] for s in pip])
    shift = np.array([s[2] for s in pip])
    assert np.abs(ang).max() <= 30 + 1e-3 and 0.35 < np.mean(np.abs(ang) > 1e-3) < 0.65  # ±30° with p 0.5
    assert np.abs(shift).max() <= 30 / 256 * SIZE + 1e-3 and 0.35 < np.mean(np.abs(shift).max(1) > 1e-3) < 0.65

    lkl = _geometry_samples("laplacekl", n=5)
    assert all(abs(s[0]) < 1e-4 and abs(s[1] - 1) < 1e-4 and not s[3] for s in lkl)  # no augmentation
    assert PRESETS["lotr"] == PRESETS["earp"]


def test_every_preset_validates_and_bad_dicts_are_rejected():
    for name, preset in PRESETS.items():
        assert get_preset(dict(preset)) == get_preset(name)
    with pytest.raises(InvalidArgumentError, match="unknown augmentation preset 'nope'"):
        get_preset("nope")
    with pytest.raises(InvalidArgumentError, match="unknown fields \\['max'\\]"):
        get_preset({"rotate": {"max": 10}})
    with pytest.raises(InvalidArgumentError, match="erase.mode must be one of"):
        get_preset({"erase": {"mode": "circle"}})
    with pytest.raises(InvalidArgumentError, match="unknown augmentation keys \\['warp'\\]"):
        get_preset({"warp": {}})


def test_photometric_ops():
    img = tf.constant(np.random.default_rng(0).integers(0, 255, (40, 50, 3)), tf.float32)
    s = [0, 1]
    np.testing.assert_array_equal(T.color_jitter(img, 0.4, 0.4, 0.4, p=0.0, seed=s).numpy(), img.numpy())
    np.testing.assert_array_equal(T.pca_lighting(img, 0.0, seed=s).numpy(), img.numpy())
    ratio = (T.channel_scale(tf.ones((4, 4, 3)) * 100.0, 0.6, 1.4, seed=s) / 100.0).numpy()[0, 0]
    assert np.all((ratio >= 0.6) & (ratio <= 1.4)) and len(set(ratio.round(5))) == 3
    g = T.random_grayscale(img, 1.0, seed=s).numpy()
    assert np.allclose(g[..., 0], g[..., 1]) and np.allclose(g[..., 1], g[..., 2])
    blurred = T.gaussian_blur(tf.ones((30, 30, 3)) * 77.0, 1.0, 3.0, seed=s).numpy()
    np.testing.assert_allclose(blurred, 77.0, atol=1e-3)
    zero = tf.ones((50, 40, 3)) * 200.0
    for mode, lo, hi in (("sides", 0.0, 0.16), ("area", 0.02, 0.4), ("centered", 0.0, 1.0)):
        fracs = [float(np.mean(T.random_erasing(zero, 1.0, 0.4, fill="zero", mode=mode, seed=[i, 5]).numpy()[..., 0] == 0))
                 for i in range(30)]
        assert min(fracs) >= lo - 0.03 and max(fracs) <= hi + 0.03 and max(fracs) > 0, (mode, fracs)
    assert np.all(T.random_erasing(zero, 0.0, 0.4, seed=s).numpy() == 200.0)
    # stateless: the same seed gives the same draw, another seed another one
    a = T.color_jitter(img, 0.4, 0.4, 0.4, seed=[3, 4]).numpy()
    assert np.array_equal(a, T.color_jitter(img, 0.4, 0.4, 0.4, seed=[3, 4]).numpy())
    assert not np.array_equal(a, T.color_jitter(img, 0.4, 0.4, 0.4, seed=[3, 5]).numpy())


# --------------------------------------------------------------------------------------------- datasets
def _source(n=6):
    imgs, pts_all, boxes = [], [], []
    for i in range(n):
        box = (14 + 3 * i, 20, 94 + 3 * i, 108)  # a distinct position per example (its id in the tests)
        img, pts = _blob_face(box=box)
        imgs.append(img)
        pts_all.append(pts)
        boxes.append(box)
    return tf.data.Dataset.from_tensor_slices({
        "image": np.stack(imgs), "landmarks": np.stack(pts_all).astype(np.float32),
        "visible": np.ones((n, 19), np.float32), "bbox": np.array(boxes, np.float32)})


COMMON = dict(crop={"policy": "box", "scale": 1.2}, input_size=(64, 64), scheme="aflw19",
              mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])


def test_evaluation_is_deterministic_and_keeps_order():
    a = list(make_dataset(_source(), batch_size=4, **COMMON).as_numpy_iterator())
    b = list(make_dataset(_source(), batch_size=4, **COMMON).as_numpy_iterator())
    assert len(a) == 2 and a[0][0].shape == (4, 64, 64, 3)
    for (ia, xa), (ib, xb) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        for k in ("landmarks", "affine", "inverse_affine", "image_landmarks"):
            np.testing.assert_array_equal(xa[k], xb[k])
    first = np.concatenate([x["image_landmarks"][:, 0, 0] for _, x in a])
    np.testing.assert_allclose(first, [p["landmarks"][0, 0] for p in _source().as_numpy_iterator()])
    # the inverse affine maps crop points back onto the image points
    back = np.einsum("bij,bkj->bki", a[0][1]["inverse_affine"][:, :, :2], a[0][1]["landmarks"]) + a[0][1]["inverse_affine"][:, None, :, 2]
    np.testing.assert_allclose(back, a[0][1]["image_landmarks"], atol=1e-3)


def test_shards_by_worker_are_disjoint_and_complete():
    def ids(ds):
        return [round(float(v), 3) for _, x in ds.as_numpy_iterator() for v in x["image_landmarks"][:, 0, 0]]

    full = ids(make_dataset(_source(7), batch_size=2, **COMMON))
    shards = [ids(make_dataset(_source(7), batch_size=2, num_shards=3, shard_index=i, **COMMON)) for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(full) and len(set(sum(shards, []))) == 7
    ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=1)
    assert ids(make_dataset(_source(7), batch_size=2, input_context=ctx, **COMMON)) == shards[1]
    with pytest.raises(InvalidArgumentError, match="shard_index"):
        make_dataset(_source(), num_shards=2, shard_index=2, **COMMON)


def test_training_dataset_with_codec_and_prefetch():
    from lmkzoo.codecs.pipnet_codec import PIPNetCodec, packaged_meanface

    codec = PIPNetCodec.from_meanface(packaged_meanface("pipnet_aflw"), 4, (64, 64), 32)
    ds = make_dataset(_source(), codec=codec, training=True, batch_size=4, augment="pipnet", seed=0, epochs=2,
                      **COMMON)
    assert "Prefetch" in type(ds).__name__
    images, targets = next(iter(ds))
    assert images.shape == (4, 64, 64, 3) and images.dtype == tf.float32
    assert set(targets) >= {"cell", "offsets", "visible"}
    with pytest.raises(InvalidArgumentError, match="codec"):
        make_dataset(_source(), training=True, **COMMON)


def test_unlabelled_images_and_tfds_sources(tmp_path):
    from datasets_tfds._common.testing import build

    build("face_image_folder", tmp_path, config="folder")
    ds = make_dataset("face_image_folder/folder", split="train", data_dir=tmp_path, batch_size=2, training=True,
                      augment="earp", **{**COMMON, "crop": {"policy": "box", "scale": 1.0}})
    images, info = next(iter(ds))
    assert images.shape == (2, 64, 64, 3) and set(info) == {"affine", "inverse_affine"}
    build("ibug_300w", tmp_path, config="split1")
    ev = make_dataset("ibug_300w/split1", split="test_common", data_dir=tmp_path, batch_size=2,
                      crop={"policy": "box", "scale": 1.1}, input_size=(64, 64), scheme="ibug68",
                      mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    (images, info), = list(ev)
    assert images.shape == (2, 64, 64, 3) and info["landmarks"].shape == (2, 68, 2)


def test_scheme_sides_mirror_under_the_flip_permutation():
    for name in ("ibug68", "wflw98", "jd106", "cofw29", "aflw19", "menpo39", "five_point"):
        s = schemes.get(name)
        np.testing.assert_array_equal(s.sides[list(s.flip_permutation)], -s.sides)
