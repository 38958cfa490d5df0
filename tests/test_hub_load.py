"""lmkzoo.load with every kind of ``weights=`` (None, a .weights.h5 path, a .keras path in safe mode, a URL
with its SHA-256, "pretrained" through the hub) on a tiny zoo model, and ``lmkzoo publish`` end to end:
run folder → weights file + zoo.yaml entry → served on 127.0.0.1 → ``lmkzoo.load`` gives the same model."""

import copy
import json
import shutil
import socket
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import yaml
from hub_server import TINY_ARCH, Route, Server, card, sha, write_zoo

import lmkzoo
from lmkzoo import cli, registry
from lmkzoo.codecs import packaged_meanface
from lmkzoo.errors import ChecksumMismatchError, InvalidArgumentError, WeightsUnavailableError
from lmkzoo.inference.loader import build_network
from lmkzoo.registry import ZooFormatError, validate_weights_entry
from lmkzoo.training import publish

X = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype("float32")


@pytest.fixture(autouse=True)
def hub_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LMKZOO_HOME", str(tmp_path / "home"))
    for var in ("LMKZOO_OFFLINE", "LMKZOO_WEIGHTS_MIRROR", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("LMKZOO_HUB_TIMEOUT", "5")
    real_connect = socket.socket.connect

    def loopback_only(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a test tried to reach {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    return tmp_path / "home" / "weights"


@pytest.fixture
def server():
    with Server() as s:
        yield s


MEANFACE = (packaged_meanface("pipnet_aflw") * 0.9 + 0.05).round(6).tolist()  # not the packaged default


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """Built once: a tiny net as the zoo builds it (``ref``) and one trained with its own mean face."""
    with open(registry.zoo_path()) as f:
        raw = yaml.safe_load(f)
    raw["models"]["tiny_hub"] = copy.deepcopy(TINY_ARCH)
    spec = registry.validate_zoo(raw)["tiny_hub.aflw"]
    d = tmp_path_factory.mktemp("nets")
    out = {}
    for key, overrides in (("ref", {}), ("trained", {"meanface": MEANFACE})):
        net = build_network(spec, **overrides)
        net.save_weights(str(d / f"{key}.weights.h5"))
        net.save(d / f"{key}.keras")
        out[key] = SimpleNamespace(net=net, out=outputs(net), h5=d / f"{key}.weights.h5", keras=d / f"{key}.keras")
    return SimpleNamespace(**out)


def outputs(network):
    out = network(X, training=False)
    dec = network.decode(out)
    return {**{k: np.asarray(v) for k, v in out.items()}, "landmarks": np.asarray(dec["landmarks"])}


def same(a, b):
    return all(np.allclose(a[k], b[k], atol=1e-6) for k in a)


def same_weights(net, ref) -> bool:
    """Every variable equal (the file was loaded); cheaper than running both networks."""
    a, b = net.get_weights(), ref.get_weights()
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, loading weights that do not fit
def test_load_every_kind_of_weights(server, hub_env, monkeypatch, tmp_path, nets):
    write_zoo(monkeypatch, tmp_path, {"tiny_hub": TINY_ARCH})
    fresh = lmkzoo.load("tiny_hub.aflw", weights=None)  # random init
    assert fresh.spec.name == "tiny_hub.aflw" and fresh.network.num_points == 19
    ref = nets.ref.net
    assert not same_weights(fresh.network, ref)  # a fresh init differs from the saved one
    h5, kfile = nets.ref.h5, nets.ref.keras
    digest = sha(h5.read_bytes())

    assert same_weights(lmkzoo.load("tiny_hub", weights=str(h5)).network, ref)
    with pytest.raises(ChecksumMismatchError, match=f"expected {'0' * 64}, got {digest}"):
        lmkzoo.load("tiny_hub", weights=h5, sha256="0" * 64)  # a local file checked when a hash is given
    from_keras = lmkzoo.load("tiny_hub", weights=str(kfile))
    assert same_weights(from_keras.network, ref) and from_keras.spec.name == "tiny_hub.aflw"
    alone = lmkzoo.load(kfile)  # a .keras file by itself carries its spec
    assert same(nets.ref.out, outputs(alone.network)) and alone.spec.name == "tiny_hub.aflw"

    url = server.add("/u/mine.weights.h5", Route(data=h5.read_bytes()))
    with pytest.raises(InvalidArgumentError, match="no SHA-256 for .*mine.weights.h5"):
        lmkzoo.load("tiny_hub", weights=url)
    with pytest.raises(ChecksumMismatchError):
        lmkzoo.load("tiny_hub", weights=url, sha256="0" * 64)
    assert not (hub_env / "mine.weights.h5").exists()
    assert same_weights(lmkzoo.load("tiny_hub", weights=f"{url}#sha256={digest}").network, ref)
    assert (hub_env / "mine.weights.h5").read_bytes() == h5.read_bytes()
    assert same_weights(lmkzoo.load("tiny_hub", weights=url, sha256=digest).network, ref)  # cached: no request
    assert len(server.httpd.routes["/u/mine.weights.h5"].requests) == 2

    with pytest.raises(WeightsUnavailableError, match="tiny_hub.aflw has no published weights"):
        lmkzoo.load("tiny_hub")
    with pytest.raises(WeightsUnavailableError, match="weights file not found"):
        lmkzoo.load("tiny_hub", weights=tmp_path / "nope.weights.h5")
    with pytest.raises(InvalidArgumentError, match="must be a Keras '.weights.h5' or '.keras' file"):
        (tmp_path / "epoch59.pth").write_bytes(b"x")
        lmkzoo.load("tiny_hub", weights=tmp_path / "epoch59.pth")
    with pytest.raises(InvalidArgumentError, match="sha256= checks a weights URL or path"):
        lmkzoo.load("tiny_hub", weights=None, sha256=sha(b""))
    # weights of another architecture do not fit
    wide = copy.deepcopy(TINY_ARCH)
    wide["builder"]["backbone_args"] = {"width_multiplier": 0.25}
    write_zoo(monkeypatch, tmp_path, {"tiny_hub": TINY_ARCH, "tiny_wide": wide})
    with pytest.raises(InvalidArgumentError, match="does not fit tiny_wide.aflw"):
        lmkzoo.load("tiny_wide", weights=h5)


def test_pretrained_weights_come_through_the_hub(server, hub_env, monkeypatch, tmp_path, nets):
    data = nets.ref.h5.read_bytes()
    arch = copy.deepcopy(TINY_ARCH)
    dead = server.add("/dead/tiny_hub.aflw-x.weights.h5", Route(status=404))
    live = server.add("/live/tiny_hub.aflw-x.weights.h5", Route(data=data))
    arch["tags"]["aflw"]["weights"] = card(dead, data, mirrors=[live])
    write_zoo(monkeypatch, tmp_path, {"tiny_hub": arch})
    lm = lmkzoo.load("tiny_hub")
    assert same_weights(lm.network, nets.ref.net)
    assert sorted(p.name for p in hub_env.iterdir()) == ["tiny_hub.aflw-x.weights.h5"]
    # offline, the cached file still loads
    monkeypatch.setenv("LMKZOO_OFFLINE", "1")
    assert same_weights(lmkzoo.load("tiny_hub").network, nets.ref.net)
    assert [len(server.httpd.routes[p].requests) for p in ("/dead/tiny_hub.aflw-x.weights.h5",
                                                           "/live/tiny_hub.aflw-x.weights.h5")] == [1, 1]


def test_keras_files_load_in_safe_mode(tmp_path, monkeypatch):
    write_zoo(monkeypatch, tmp_path, {"tiny_hub": TINY_ARCH})
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(InvalidArgumentError, match="Keras safe mode.*Lambda"):
        lmkzoo.load("tiny_hub", weights=path)


def _run_folder(tmp_path, monkeypatch, nets, *, history=True):
    """A folder shaped like lmkzoo.training.train's output, for a net trained with its own mean face."""
    write_zoo(monkeypatch, tmp_path, {"tiny_hub": TINY_ARCH})
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(nets.trained.keras, run / "final.keras")
    shutil.copyfile(nets.trained.h5, run / "final.weights.h5")
    (run / "config.json").write_text(json.dumps({
        "model": "tiny_hub.aflw", "data": "landmark_folder/lfw_teacher68", "epochs": 3, "batch_size": 2,
        "learning_rate": None, "augment": "pipnet", "builder_overrides": {"meanface": MEANFACE}, "seed": 0,
    }))
    if history:
        (run / "history.json").write_text(json.dumps({"loss": [3.0, 2.0], "val_nme": [0.2, 0.0831], "val_fr": [0.9, 0.5]}))
    return run


def test_publish_run_folder_then_load_it_from_the_zoo(server, hub_env, tmp_path, monkeypatch, capsys, nets):
    run = _run_folder(tmp_path, monkeypatch, nets)
    template = server.base + "/releases/{version}/{filename}"
    assert cli.main(["publish", str(run), "--license", "Apache-2.0", "--data-license", "LFW: no licence stated",
                     "--url-template", template]) == 0
    out, err = capsys.readouterr()
    published = [p for p in run.iterdir() if p.name.startswith("tiny_hub.aflw-")]
    assert len(published) == 1
    f = published[0]
    digest = sha(f.read_bytes())
    assert f.name == f"tiny_hub.aflw-{digest[:8]}.weights.h5" and f"sha256 {digest}" in err
    assert out.startswith("# zoo.yaml: merge into models.tiny_hub.tags.aflw\n      aflw:\n")
    tag = yaml.safe_load(out)["aflw"]
    w = tag["weights"]
    assert w["sha256"] == digest and w["size"] == f.stat().st_size
    assert w["url"] == f"{server.base}/releases/{lmkzoo.__version__}/{f.name}"
    assert w["metrics"] == {"landmark_folder/lfw_teacher68:val_nme": 0.0831, "landmark_folder/lfw_teacher68:val_fr": 0.5}
    assert w["training_data"] == "landmark_folder/lfw_teacher68" and w["data_license"] == "LFW: no licence stated"
    assert "trained by lmkzoo" in w["made_by"] and "tiny_hub.aflw recipe" in w["made_by"] and w["recipe"]["epochs"] == 3
    assert np.allclose(tag["builder"]["meanface"], MEANFACE)
    validate_weights_entry(w)
    # the entry goes into zoo.yaml, the file onto the server: lmkzoo.load reproduces the trained model
    server.add(f"/releases/{lmkzoo.__version__}/{f.name}", Route(data=f.read_bytes()))
    arch = copy.deepcopy(TINY_ARCH)
    arch["tags"]["aflw"].update(tag)
    write_zoo(monkeypatch, tmp_path, {"tiny_hub": arch})
    lm = lmkzoo.load("tiny_hub")
    assert same(nets.trained.out, outputs(lm.network))
    assert not same(nets.ref.out, outputs(lm.network))  # the mean face matters: decoded points differ
    assert (hub_env / f.name).read_bytes() == f.read_bytes()


def test_publish_keras_file_finds_its_mean_face(tmp_path, monkeypatch, nets):
    run = _run_folder(tmp_path, monkeypatch, nets, history=False)
    lone = tmp_path / "lone"
    lone.mkdir()
    (run / "final.keras").rename(lone / "model.keras")
    with pytest.raises(InvalidArgumentError, match="needs measured metrics"):
        publish.publish(lone / "model.keras", license="MIT", data_license="CC0", training_data="x")
    res = publish.publish(lone / "model.keras", license="MIT", data_license="CC0", training_data="synthetic faces",
                      metrics={"synthetic_nme": 0.05}, out_dir=tmp_path / "pub", url_template="https://h.example/{sha8}/{filename}",
                      mirrors=["https://m.example/{arch}/{filename}"])
    assert res.name == "tiny_hub.aflw" and np.allclose(res.builder["meanface"], MEANFACE)
    assert res.path.parent == tmp_path / "pub" and res.sha256 == sha(res.path.read_bytes())
    assert res.url == f"https://h.example/{res.sha256[:8]}/{res.path.name}"
    assert res.entry["mirrors"] == [f"https://m.example/tiny_hub/{res.path.name}"]
    assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == [res.path.name]  # no temporary left
    rebuilt = build_network(lmkzoo.get_spec("tiny_hub"), **res.builder)
    rebuilt.load_weights(str(res.path))
    assert same(nets.trained.out, outputs(rebuilt))


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, loading weights that do not fit
def test_publish_errors(tmp_path, monkeypatch, capsys, nets):
    run = _run_folder(tmp_path, monkeypatch, nets)
    with pytest.raises(InvalidArgumentError, match="neither final.keras nor final.weights.h5"):
        publish.publish(tmp_path, license="MIT", data_license="CC0")
    with pytest.raises(InvalidArgumentError, match="says the run trained 'tiny_hub.aflw', not 'pipnet_r18.aflw'"):
        publish.publish(run, name="pipnet_r18.aflw", license="MIT", data_license="CC0")
    with pytest.raises(InvalidArgumentError, match="URL template .https://h/{colour}. uses an unknown field"):
        publish.publish(run, license="MIT", data_license="CC0", url_template="https://h/{colour}")
    with pytest.raises(ZooFormatError, match="license: must be a non-empty string"):
        publish.publish(run, license=" ", data_license="CC0")
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "final.keras", "final.weights.h5", "history.json"]
    wide = copy.deepcopy(TINY_ARCH)
    wide["builder"]["backbone_args"] = {"width_multiplier": 0.25}
    write_zoo(monkeypatch, tmp_path, {"tiny_hub": TINY_ARCH, "tiny_wide": wide})
    (run / "final.keras").unlink()
    (run / "config.json").unlink()
    with pytest.raises(InvalidArgumentError, match="do not fit tiny_wide.aflw"):
        publish.publish(run / "final.weights.h5", name="tiny_wide", license="MIT", data_license="CC0",
                    training_data="x", metrics={"nme": 1.0})
    assert sorted(p.name for p in run.iterdir()) == ["final.weights.h5", "history.json"]
    assert cli.main(["publish", str(run / "final.weights.h5"), "--license", "MIT", "--data-license", "CC0"]) == 2
    assert "cannot tell which zoo model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["publish", str(run), "--license", "MIT", "--data-license", "CC0", "--metric", "nme=oops"])
    assert e.value.code == 2 and "a metric is KEY=NUMBER, e.g. wflw_test_nme=4.6; got 'nme=oops'" in capsys.readouterr().err
