"""PIPNet self-training with curriculum (issue 15): STC heads, typed targets, the masked loss, the pseudo-label
artefact, the round loop (gradient reaches each task's head only in its phase), export and the CLI.

Tiny settings throughout: ResNet-18 at width 0.125, 64 px crops at network stride 16 (a 4x4 PIP grid, pooled
to 2x2 and 1x1), one or two steps per round."""

import csv
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from lmkzoo import geometry
from lmkzoo.testing.lfw import face_image_folder, row_points, teacher_rows

TINY = {"backbone_args": {"width_multiplier": 0.125}, "net_stride": 16, "extra_channels": 16}
TYPES = {"std": 0, "cls1": 1, "cls2": 2, "cls3": 3}


def _spec(size=64, tag="300w", **builder):
    from lmkzoo.testing.tiny import tiny_spec

    return tiny_spec(f"pipnet_r18_stc.{tag}", size, **{**TINY, **builder})


@pytest.fixture(scope="module")
def stc_net():
    import keras

    from lmkzoo.families.base import get_family

    keras.utils.set_random_seed(0)
    spec = _spec()
    return spec, get_family("pipnet").build_network(spec, stc_heads=True)


def _build_unlabeled(manual, data_dir):
    from datasets_tfds._common.testing import build

    return build("face_image_folder", data_dir, config="folder", manual_dir=manual)


# ------------------------------------------------------------------------------------------------ network
def test_stc_heads_shapes_reuse_cls_layer_and_load_into_plain_pipnet(stc_net, tmp_path):
    import keras

    from lmkzoo.errors import InvalidArgumentError
    from lmkzoo.families.base import get_family
    from lmkzoo.models.pipnet import PIPNet

    spec, net = stc_net
    family = get_family("pipnet")
    shapes = {k: tuple(v.shape[1:3]) for k, v in net.output.items()}
    assert shapes["scores"] == (4, 4) and shapes["scores_pool1"] == (2, 2) and shapes["scores_pool2"] == (1, 1)
    assert net.output["scores_pool2"].shape[-1] == 68
    # the paper's sizes: 8x8 / 4x4 / 2x2 at 256 px and stride 32 (graph only)
    big = family.build_network(_spec(256, net_stride=32), stc_heads=True)
    assert [tuple(big.output[k].shape[1:3]) for k in ("scores", "scores_pool1", "scores_pool2")] == [(8, 8), (4, 4), (2, 2)]
    # the same cls_layer object on all three maps: no extra weights, identical weight names
    plain = family.build_network(spec)
    assert [w.path for w in net.weights] == [w.path for w in plain.weights]
    assert net.count_params() == plain.count_params()
    cls = net.get_layer("cls_layer")
    assert len(cls._inbound_nodes) == 3
    # an STC network's weights load into the plain PIPNet of the same config and give the same standard outputs
    path = tmp_path / "stc.weights.h5"
    net.save_weights(str(path))
    plain.load_weights(str(path))
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    a, b = net(x), plain(x)
    for k in plain.output:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
    # the pooled map is cls_layer on the 2x2-max-pooled features
    feat = keras.Model(net.input, net.get_layer("stc_pool1").input)(x)
    pooled = keras.ops.max_pool(feat, 2, 2)
    np.testing.assert_allclose(a["scores_pool1"], cls(pooled), rtol=1e-5, atol=1e-6)
    # config round trip keeps the option; too small a grid is refused
    again = PIPNet.from_config(net.get_config())
    assert again.stc_heads and "scores_pool2" in again.output and "stc_heads" not in plain.get_config()
    with pytest.raises(InvalidArgumentError, match="grid of at least 4x4"):
        family.build_network(_spec(32), stc_heads=True)


def test_codec_types_and_pooled_cells_flow_through_the_pipeline(stc_net):
    import tensorflow as tf

    from lmkzoo.data.pipeline import make_dataset

    spec, net = stc_net
    codec = net.codec
    pts = np.array([[[1.0, 1.0], [63.0, 63.0], [20.0, 50.0]] + [[32.0, 32.0]] * 65], np.float32)
    plain = codec.encode(pts)
    assert "task" not in plain and "cell_pool1" not in plain
    t = codec.encode(pts, task=np.array([2]))
    assert t["task"].numpy().tolist() == [2]
    # 4x4 grid: (1,1) -> cell 0; (63,63) -> (3,3) = 15; (20,50) -> col 1, row 3 = 13; pooled 2x2: 0, 3, 2; 1x1: all 0
    assert t["cell"].numpy()[0, :3].tolist() == [0, 15, 13]
    assert t["cell_pool1"].numpy()[0, :3].tolist() == [0, 3, 2]
    assert t["cell_pool2"].numpy()[0].max() == 0
    # tf.data: a per-example task reaches the targets; examples without one keep the old targets
    ex = {"image": np.zeros((4, 80, 80, 3), np.uint8), "landmarks": np.tile(pts, (4, 1, 1)) + 8,
          "visible": np.ones((4, 68), np.float32), "bbox": np.tile(np.float32([8, 8, 72, 72]), (4, 1))}
    common = dict(crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme, mean=spec.mean, std=spec.std)
    typed = tf.data.Dataset.from_tensor_slices({**ex, "task": np.array([0, 1, 2, 3], np.int32)})
    _, targets = next(iter(make_dataset(typed, codec=codec, training=True, batch_size=4, augment="none", **common)))
    assert sorted(targets["task"].numpy().tolist()) == [0, 1, 2, 3] and targets["cell_pool1"].shape == (4, 68)
    _, old = next(iter(make_dataset(tf.data.Dataset.from_tensor_slices(ex), codec=codec, training=True, batch_size=4,
                                    augment="none", **common)))
    assert set(old) == {"cell", "offsets", "neighbor_offsets", "visible", "neighbor_visible"}


# ------------------------------------------------------------------------------------------------ loss
def _batch(net, task, n=2, seed=0):
    n = len(task) if np.ndim(task) else n
    rng = np.random.default_rng(seed)
    pts = rng.uniform(4, 60, (n, 68, 2)).astype(np.float32)
    x = rng.normal(size=(n, 64, 64, 3)).astype(np.float32)
    return x, net.codec.encode(pts, task=np.asarray(task if np.ndim(task) else [task] * n, np.int32))


ACTIVE = {  # outputs and head kernels a batch of each type trains (docs/reference_facts.md §A9)
    "std": {"scores", "offset_x", "offset_y", "neighbor_x", "neighbor_y"},
    "cls1": {"scores"},
    "cls2": {"scores_pool1"},
    "cls3": {"scores_pool2"},
}
KERNELS = {"offset_x": "x_layer", "offset_y": "y_layer", "neighbor_x": "nb_x_layer", "neighbor_y": "nb_y_layer"}


@pytest.mark.parametrize("kind", list(TYPES))
def test_loss_masks_each_term_by_sample_type(stc_net, kind):
    import tensorflow as tf

    from lmkzoo.losses import STCLoss
    from lmkzoo.training.self_training import phase_gradients

    _, net = stc_net
    loss = STCLoss()
    x, t = _batch(net, TYPES[kind])
    probe = phase_gradients(net, loss, x, t)
    for name, g in probe["outputs"].items():
        assert (g > 0) == (name in ACTIVE[kind]), (kind, name, g)
    for layer in KERNELS.values():
        assert (probe["kernels"][layer] > 0) == (kind == "std"), (kind, layer)
    assert probe["kernels"]["cls_layer"] > 0  # the shared classifier learns in every phase
    # the value depends only on the active maps: scrambling every other output changes nothing
    out = {k: v for k, v in net(x).items()}
    rng = np.random.default_rng(1)
    scrambled = {k: (v if k in ACTIVE[kind] else tf.constant(rng.normal(size=v.shape).astype(np.float32)))
                 for k, v in out.items()}
    np.testing.assert_allclose(float(loss(t, out)), float(loss(t, scrambled)), rtol=1e-6)
    if kind == "cls3":  # 1x1 map, target 1: 10 * mean over K of (s - 1)^2
        s = out["scores_pool2"].numpy()
        np.testing.assert_allclose(float(loss(t, out)), 10 * np.mean((s - 1) ** 2), rtol=1e-5)


def test_loss_equals_piploss_on_std_and_normalises_mixed_batches_by_mask_sums(stc_net):
    from keras import ops

    from lmkzoo.losses import PIPLoss, STCLoss

    _, net = stc_net
    x, t = _batch(net, [0, 0, 0])
    out = net(x)
    plain = {k: v for k, v in t.items() if k not in ("task", "cell_pool1", "cell_pool2")}
    np.testing.assert_allclose(float(STCLoss()(t, out)), float(PIPLoss()(plain, out)), rtol=1e-6)
    np.testing.assert_allclose(float(STCLoss()(plain, out)), float(PIPLoss()(plain, out)), rtol=1e-6)
    # a mixed batch: (sum of the masked squared errors over the three maps) / (mask sum), + L1 over std rows only
    x, t = _batch(net, [0, 1, 2, 3], n=4, seed=3)
    out = {k: v.numpy() for k, v in net(x).items()}
    k = 68
    sq, count = 0.0, 0.0
    for i, (key, cell) in enumerate([("scores", "cell"), ("scores", "cell"), ("scores_pool1", "cell_pool1"),
                                     ("scores_pool2", "cell_pool2")]):
        s = out[key][i].reshape(-1, k)
        oh = np.zeros_like(s)
        oh[t[cell].numpy()[i], np.arange(k)] = 1
        sq += ((s - oh) ** 2).sum()
        count += s.size
    c0 = t["cell"].numpy()[0]
    off = t["offsets"].numpy()[0]
    nb = t["neighbor_offsets"].numpy()[0]
    g = lambda name: out[name][0].reshape(16, k, -1)[c0, np.arange(k)]  # noqa: E731
    l1 = (np.abs(g("offset_x")[:, 0] - off[:, 0]).sum() + np.abs(g("offset_y")[:, 0] - off[:, 1]).sum()) / k
    l1 += (np.abs(g("neighbor_x") - nb[..., 0]).sum() + np.abs(g("neighbor_y") - nb[..., 1]).sum()) / (k * 10)
    expected = 10 * sq / count + l1
    np.testing.assert_allclose(float(STCLoss()(t, {k_: ops.convert_to_tensor(v) for k_, v in out.items()})), expected,
                               rtol=1e-5)


# ------------------------------------------------------------------------------------------------ artefact
def test_paradigms_resolve_to_sources_with_their_box_conventions():
    import tensorflow as tf

    from lmkzoo import crops
    from lmkzoo.errors import InvalidArgumentError
    from lmkzoo.registry import get_spec
    from lmkzoo.training.self_training import _unlabeled_stream, resolve_unlabeled, source_box_adjust

    spec = get_spec("pipnet_r18_stc")
    assert resolve_unlabeled(spec, "gsl") is None and resolve_unlabeled(spec, None) is None
    uda = resolve_unlabeled(spec, "UDA")
    assert [u["source"] for u in uda] == ["cofw/cofw29:train", "wflw:train"]
    gssl = resolve_unlabeled(spec, "gssl")
    assert [u["source"] for u in gssl] == ["face_image_folder/celeba:train"]
    assert [u["source"] for u in resolve_unlabeled(spec, "a:train, b/c")] == ["a:train", "b/c"]
    assert resolve_unlabeled(spec, uda) == uda  # resolving twice (train() then train_self_training) changes nothing
    # the model's own 1.3 crop of the adjusted box is the official crop of each source's box (lib/preprocess_uda.py)
    box = np.array([40.0, 30.0, 140.0, 150.0])
    w, h = 100.0, 120.0
    official = {"wflw:train": [40 - 0.1 * w, 30 + 0.1 * h, 140 + 0.1 * w, 150 + 0.1 * h],
                "face_image_folder/celeba:train": [40 - 0.1 * w, 30 + 0.15 * h, 140 + 0.1 * w, 150 + 0.1 * h],
                "cofw/cofw29:train": [40 - 0.15 * w, 30 - 0.15 * h, 140 + 0.15 * w, 150 + 0.15 * h]}
    for src in uda + gssl:
        cut = crops.crop_box(crops.crop_box(box, src["box_adjust"]), spec.crop)
        np.testing.assert_allclose(cut, official[src["source"]], atol=1e-9)
    # a list of sources is read one after the other, each box moved by its own adjustment
    img = tf.zeros([8, 8, 3], tf.uint8)
    one = tf.data.Dataset.from_tensors({"image": img, "bbox": tf.constant(box, tf.float32)})
    stream, desc = _unlabeled_stream([{"source": one, "box_adjust": None},
                                      {"source": one, "box_adjust": source_box_adjust({"scale": 2.6}, spec.crop)}])
    got = [ex["bbox"] for ex in stream.as_numpy_iterator()]
    np.testing.assert_allclose(got[0], box)
    np.testing.assert_allclose(got[1], [-10.0, -30.0, 190.0, 210.0])
    assert "box scale 2x2" in desc
    with pytest.raises(InvalidArgumentError, match="names no unlabeled data for paradigm 'uda'"):
        resolve_unlabeled(dataclasses.replace(spec, recipe={**spec.recipe, "stc": {"curriculum": True}}), "uda")
    with pytest.raises(InvalidArgumentError, match="unknown recipe.stc.paradigms"):
        resolve_unlabeled(dataclasses.replace(spec, recipe={**spec.recipe, "stc": {"paradigms": {"ssl": {}}}}), "b")
    with pytest.raises(InvalidArgumentError, match="an unlabeled source is"):
        resolve_unlabeled(spec, [{"name": "wflw"}])
    with pytest.raises(InvalidArgumentError, match="non-square box"):
        source_box_adjust({"scale": 1.2}, {"policy": "box", "scale": 1.3, "square": True})


def test_pseudo_label_artefact_round_trip_through_landmark_folder(shared_data, tmp_path):
    from lmkzoo.training.self_training import load_pseudo_labels, write_pseudo_labels

    rows = teacher_rows(shared_data)[:3]
    pts = np.stack([row_points(r) for r in rows])
    boxes = geometry.points_bbox(pts) + np.float32([-3, -4, 5, 6])
    images = [shared_data / "lfw_faces" / r[0] for r in rows]
    folder = write_pseudo_labels(tmp_path / "pl", images=images, points=pts, boxes=boxes, scheme="ibug68",
                                 scores=np.full((3, 68), 0.5), provenance={"model": "m.t", "weights_sha256": "ab" * 32,
                                                                           "round": 2, "task": "cls2", "lmkzoo_version": "0"})
    meta = json.loads((folder / "provenance.json").read_text())
    assert meta["num_faces"] == 3 and meta["task"] == "cls2" and meta["tfds"]["config"]["format"] == "csv"
    ds, meta2 = load_pseudo_labels(folder, task="cls2")
    got = list(ds.as_numpy_iterator())
    assert meta2 == meta and len(got) == 3
    order = {str(Path(r).resolve()): i for i, r in enumerate(images)}
    for ex in got:
        i = order[ex["image/filename"].decode()]
        np.testing.assert_allclose(ex["landmarks"], pts[i], atol=1e-3)
        np.testing.assert_allclose(ex["bbox"], boxes[i], atol=1e-3)
        assert ex["task"] == 2 and ex["image"].shape == (250, 250, 3)


# ------------------------------------------------------------------------------------------------ the loop
def test_cli_curriculum_round_trains_each_head_only_in_its_phase(shared_data, tmp_path, monkeypatch, capsys):
    """``lmkzoo train pipnet_r18_stc --unlabeled ...`` on a slice of the LFW teacher labels (three people) with other
    LFW people unlabeled: one pass through the curriculum (cls3, cls2, std) after the labelled round; each round's
    pseudo-labelled batches train only their own head, labelled batches always the full PIP head."""
    import tensorflow as tf

    import lmkzoo.registry
    from datasets_tfds._common.synthetic import write_pts
    from lmkzoo.cli import main
    from lmkzoo.export.metadata import read_metadata
    from lmkzoo.families.base import get_family
    from lmkzoo.inference.landmarker import Landmarker
    from lmkzoo.inference.loader import build_network

    rows = teacher_rows(shared_data)
    people = sorted({r[0].split("/")[0] for r in rows})
    labeled = [r for r in rows if r[0].split("/")[0] in people[:3]][:16]
    others = [r for r in rows if r[0].split("/")[0] in people[-2:]][:8]
    lab = tmp_path / "lab"  # landmark_folder/pts68 over links to the labelled images
    for r in labeled:
        dst = lab / r[0]
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(shared_data / "lfw_faces" / r[0], dst)
        write_pts(dst.with_suffix(".pts"), row_points(r))
    data_dir = tmp_path / "tfds"
    _build_unlabeled(face_image_folder(shared_data, others, tmp_path / "unl"), data_dir)
    real = lmkzoo.registry.get_spec

    def one_pass(name):  # the recipe's schedule (cls3, cls2, std x 3) cut to one pass through the curriculum
        spec = real(name)
        return dataclasses.replace(spec, recipe={**spec.recipe, "stc": {"tasks": ["cls3", "cls2", "std"]}})

    monkeypatch.setattr(lmkzoo.registry, "get_spec", one_pass)
    out = tmp_path / "run"
    argv = ["train", "pipnet_r18_stc", "--data", "landmark_folder/pts68", "--manual-dir", str(lab), "--data-dir",
            str(data_dir), "--unlabeled", "face_image_folder/folder:train", "--input-size", "64", "--builder",
            json.dumps(TINY), "--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "1", "--val-split", "none",
            "--out", str(out)]
    assert main(argv) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["out"] == str(out) and last["last_epoch"]["tasks"] == "std" and np.isfinite(last["last_epoch"]["loss"])
    records = json.loads((out / "rounds.json").read_text())
    assert [r["task"] for r in records] == ["std", "cls3", "cls2", "std"]
    for r in records:
        assert np.isfinite(r["history"]["loss"][-1])
        lab_probe = r["phase_gradients"]["labeled"]["outputs"]  # labelled batches are always std
        assert {k for k, g in lab_probe.items() if g > 0} == ACTIVE["std"], (r["task"], lab_probe)
        if r["round"] == 0:
            assert "pseudo" not in r["phase_gradients"]
            continue
        pseudo = r["phase_gradients"]["pseudo"]
        assert {k for k, g in pseudo["outputs"].items() if g > 0} == ACTIVE[r["task"]], (r["task"], pseudo)
        assert (pseudo["kernels"]["x_layer"] > 0) == (r["task"] == "std")
        # the artefact names the weights that made it: the previous round's
        meta = json.loads((Path(r["pseudo_labels"]["folder"]) / "provenance.json").read_text())
        assert meta["round"] == r["round"] and meta["task"] == r["task"] and meta["num_faces"] == 8
        assert meta["weights_sha256"] == records[r["round"] - 1]["weights_sha256"] and meta["lmkzoo_version"]
        assert meta["unlabeled"] == "face_image_folder/folder:train" and meta["model"] == "pipnet_r18_stc.300w"
        with open(Path(r["pseudo_labels"]["folder"]) / "pseudo_labels.csv") as f:
            got = list(csv.DictReader(f))
        assert len(got) == 8 and Path(got[0]["image"]).is_absolute() and Path(got[0]["image"]).exists()
    # the final model is a plain PIPNet with the last round's weights; the zoo's plain build loads them
    spec = _spec()
    builder = json.loads((out / "stc_config.json").read_text())["builder_overrides"]
    plain = get_family("pipnet").build_network(spec, meanface=builder["meanface"])
    plain.load_weights(str(out / "final.weights.h5"))
    stc = build_network(spec, **{**builder, "stc_heads": True})
    stc.load_weights(records[-1]["weights"])
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(plain(x)["scores"], stc(x)["scores"], rtol=1e-5, atol=1e-6)
    # the export of the STC network (heads and all) has only the decoded outputs
    path = Landmarker(spec, stc).export(tmp_path / "stc.tflite")
    assert set(read_metadata(path)["outputs"]) == {"landmarks", "scores"}
    shapes = sorted(tuple(d["shape"][1:]) for d in tf.lite.Interpreter(model_path=str(path)).get_output_details())
    assert shapes == [(68,), (68, 2)], shapes
    # resume at round granularity: a finished run trains nothing; a lost last round reuses its pseudo-labels
    assert main(argv) == 0
    assert json.loads((out / "rounds.json").read_text()) == records
    (out / "rounds.json").write_text(json.dumps(records[:3]))
    assert main(argv) == 0
    again = json.loads((out / "rounds.json").read_text())
    assert [r["task"] for r in again] == ["std", "cls3", "cls2", "std"] and again[3]["pseudo_labels"]["reused"]
    plain.load_weights(str(out / "final.weights.h5"))
    np.testing.assert_allclose(plain(x)["scores"], stc(x)["scores"], rtol=1e-5, atol=1e-6)
