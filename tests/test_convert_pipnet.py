"""Official PIPNet checkpoints → lmkzoo: a PyTorch PIPNet-R18 written here (docs/reference_facts.md §A1-A2 keys),
its random state_dict converted, and raw outputs + decoded landmarks compared with PyTorch + a numpy §A6 decode."""

import json

import numpy as np
import pytest
import torch  # in the test extra (torch==2.13.0, CPU)

from lmkzoo import cli
from lmkzoo.codecs import neighbor_tables, packaged_meanface
from lmkzoo.convert.pipnet_torch import convert_checkpoint
from lmkzoo.errors import CheckpointMismatchError
from lmkzoo.testing.torch_pipnet import random_pipnet as _random_pipnet


def _numpy_decode(outs, nb_table, max_len, num_nb, grid):
    """docs/reference_facts.md §A6 in numpy, one image: argmax over h*W + w, own + neighbour votes, merge."""
    cls, ox, oy, nbx, nby = [o[0].reshape(o.shape[1], -1) for o in outs]
    k = cls.shape[0]
    idx = cls.argmax(1)
    gx, gy = idx % grid, idx // grid
    own_x = (gx + ox[np.arange(k), idx]) / grid
    own_y = (gy + oy[np.arange(k), idx]) / grid
    _, r1, r2, _ = nb_table
    vx = np.array([[(gx[i] + nbx[i * num_nb + j, idx[i]]) / grid for j in range(num_nb)] for i in range(k)])
    vy = np.array([[(gy[i] + nby[i * num_nb + j, idx[i]]) / grid for j in range(num_nb)] for i in range(k)])
    fx = (own_x + vx[r1, r2].reshape(k, max_len).sum(1)) / (1 + max_len)
    fy = (own_y + vy[r1, r2].reshape(k, max_len).sum(1)) / (1 + max_len)
    return np.stack([fx, fy], -1)


@pytest.mark.parametrize("net_stride", [32, 16])
def test_convert_matches_pytorch(tmp_path, net_stride):
    tnet = _random_pipnet(net_stride=net_stride)
    sd = tnet.state_dict()
    if net_stride == 32:
        assert len(sd) == 130 and sum(1 for k in sd if k.endswith("num_batches_tracked")) == 20  # §A2
    ckpt = tmp_path / "epoch59.pth"
    torch.save(sd, ckpt)
    mf = tmp_path / "meanface.txt"
    mf.write_text(" ".join(f"{v:.6f}" for v in packaged_meanface("pipnet_wflw").reshape(-1)))
    network, report = convert_checkpoint(ckpt, scheme="wflw98", meanface=str(mf), out=tmp_path / "pipnet_r18_wflw")
    assert report["backbone"] == "resnet18" and report["net_stride"] == net_stride and report["num_neighbors"] == 10
    assert (tmp_path / "pipnet_r18_wflw.weights.h5").exists() and (tmp_path / "pipnet_r18_wflw.keras").exists()
    assert report["max_abs_raw_diff"] < 1e-4

    x = np.random.default_rng(1).normal(0, 1, (1, 256, 256, 3)).astype(np.float32)
    with torch.no_grad():
        ref = [o.numpy() for o in tnet(torch.from_numpy(x.transpose(0, 3, 1, 2)))]
    out = network(x, training=False)
    for r, key in zip(ref, ("scores", "offset_x", "offset_y", "neighbor_x", "neighbor_y")):
        assert np.abs(np.asarray(out[key]) - r.transpose(0, 2, 3, 1)).max() < 1e-4, key
    grid = 256 // net_stride
    table = neighbor_tables(packaged_meanface("pipnet_wflw"), 10)
    expected = _numpy_decode(ref, table, table[3], 10, grid)
    decoded = np.asarray(network.decode(out)["landmarks"])[0] / 256.0
    assert np.abs(decoded - expected).max() < 1e-3


def test_cli_convert_and_reload(tmp_path, capsys):
    ckpt = tmp_path / "epoch59.pth"
    torch.save(_random_pipnet(num_lms=68).state_dict(), ckpt)
    out = tmp_path / "converted"
    assert cli.main(["convert", "pipnet-torch", str(ckpt), "--scheme", "ibug68", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_raw_diff"] < 1e-4 and report["num_points"] == 68
    import lmkzoo

    lm = lmkzoo.load(str(out) + ".keras")
    assert lm.spec.name == "pipnet_r18.300w" and lm.network.codec.max_len == 22
    # a converted checkpoint's weights go with its own mean face (the shipped pipnet_r18.300w card has another)
    lm2 = lmkzoo.load("pipnet_r18.300w", weights=str(out) + ".weights.h5",
                      builder={"meanface": np.asarray(lm.network.codec.meanface).tolist()})
    img = np.random.default_rng(0).integers(0, 255, (200, 180, 3), dtype=np.uint8)
    a = lm.predict(img, boxes=[[20, 30, 150, 170]])[0].points
    b = lm2.predict(img, boxes=[[20, 30, 150, 170]])[0].points
    assert np.allclose(a, b, atol=1e-3)


def test_wrong_checkpoints_list_mismatched_keys(tmp_path):
    sd = _random_pipnet().state_dict()
    bad = tmp_path / "missing.pth"
    torch.save({k: v for k, v in sd.items() if not k.startswith("layer4.1.")}, bad)
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(\d+\): layer4\.1\.conv1\.weight"):
        convert_checkpoint(bad, scheme="wflw98", check=False, out=tmp_path / "x")
    # a ResNet-50-shaped layer given to an r18 model: wrong shapes are listed
    sd2 = dict(sd)
    sd2["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    bad2 = tmp_path / "shape.pth"
    torch.save(sd2, bad2)
    with pytest.raises(CheckpointMismatchError, match=r"wrong shapes: layer1\.0\.conv1\.weight"):
        convert_checkpoint(bad2, scheme="wflw98", model="pipnet_r18", check=False, out=tmp_path / "y")
    with pytest.raises(CheckpointMismatchError, match="predicts 98 landmarks; scheme 'ibug68' has 68"):
        convert_checkpoint(tmp_path / "missing.pth", scheme="ibug68", check=False)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="not a readable PyTorch checkpoint"):
        convert_checkpoint(junk, scheme="wflw98")
    assert not list(tmp_path.glob(".tmp-*"))
