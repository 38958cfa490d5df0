"""Training engine: resume after a kill, mirrored == one device, multi-worker on loopback, schedules, mixed precision."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {"backbone_args": {"width_multiplier": 0.125}, "extra_channels": 16, "num_neighbors": 4}


def _run(code: str, env=None, timeout=600):
    e = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=e, timeout=timeout)


def _script(lfw_dir: Path, body: str, prelude: str = "") -> str:
    """A training script; ``prelude`` runs first, before TensorFlow executes any op (device and cluster
    set-up must precede the first op: logical devices, MultiWorkerMirroredStrategy's collective ops)."""
    return f"""
import json, os, sys, numpy as np
{prelude}
import tensorflow_datasets as tfds, datasets_tfds, keras
from lmkzoo.testing.tiny import tiny_spec
from lmkzoo.training.train import train
b = tfds.builder("landmark_folder/lfw_teacher68", data_dir={str(lfw_dir)!r})
src = b.as_dataset(split="train").take(32)
spec = tiny_spec("pipnet_r18.300w", 64, **{TINY!r})
{body}
"""


def _weights(path):
    import keras

    import lmkzoo.models.pipnet  # noqa: F401  (registers the classes the file names)

    net = keras.saving.load_model(path, compile=False)
    return [np.asarray(w) for w in net.weights]


@pytest.fixture(scope="module")
def lfw_dir(lfw_tfds):
    return Path(lfw_tfds.data_dir).parents[2]


def test_killed_run_resumes_to_the_same_weights(lfw_dir, tmp_path):
    body = """
out = sys.argv[1] if len(sys.argv) > 1 else os.environ["OUT"]
class Kill(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if os.environ.get("KILL_AFTER") and epoch + 1 == int(os.environ["KILL_AFTER"]):
            os.kill(os.getpid(), 9)   # a real SIGKILL, after the epoch's backup was written
train(spec, data=(src, None), out_dir=out, epochs=3, batch_size=8, learning_rate=3e-3, verbose=0, seed=7,
      callbacks=[Kill()])
"""
    code = _script(lfw_dir, body)
    full = _run(code, {"OUT": str(tmp_path / "full")})
    assert full.returncode == 0, full.stderr[-3000:]
    killed = _run(code, {"OUT": str(tmp_path / "resumed"), "KILL_AFTER": "1"})
    assert killed.returncode == -9  # really killed
    states = sorted((tmp_path / "resumed" / "backup").glob("state-*"))
    meta = json.loads((states[-1] / "state.json").read_text())
    assert meta["epoch"] == 1 and not (tmp_path / "resumed" / "final.keras").exists()
    resumed = _run(code, {"OUT": str(tmp_path / "resumed")})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    cfg = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert cfg["start_epoch"] == 1
    a, b = _weights(tmp_path / "full" / "final.keras"), _weights(tmp_path / "resumed" / "final.keras")
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.allclose(x, y, atol=1e-5, rtol=1e-4)
    log = (tmp_path / "resumed" / "log.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["0", "1", "2"]  # epochs 0, then 1 and 2 after the resume
    # the training time counts the epoch before the kill too (each epoch's time is in the resume state)
    hist = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert len(hist["epoch_seconds"]) == 3 and all(t > 0 for t in hist["epoch_seconds"])
    assert hist["train_seconds"] == pytest.approx(sum(hist["epoch_seconds"]))


def test_mirrored_on_two_logical_cpus_matches_one_device(lfw_dir, tmp_path):
    prelude = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
    # SGD: the update is linear in the gradient, so float reordering across replicas stays at float noise while a
    # real mismatch (unscaled per-replica loss, unsynchronised BatchNorm) shows; Adam's first steps are ±lr per
    # weight whatever the gradient's size, which turns reordering noise on near-zero gradients into lr-sized steps
    body = """
import dataclasses
from lmkzoo.training.run import make_strategy
out = os.environ["OUT"]
spec = dataclasses.replace(spec, recipe={**spec.recipe, "optimizer": {"name": "sgd", "momentum": 0.9}})
one, _ = train(spec, data=(src, None), out_dir=out + "/one", epochs=1, batch_size=8, learning_rate=3e-3, verbose=0,
               seed=3, strategy=make_strategy("one_device", devices=["/cpu:0"]))
mir, _ = train(spec, data=(src, None), out_dir=out + "/mirrored", epochs=1, batch_size=8, learning_rate=3e-3, verbose=0,
               seed=3, strategy="mirrored")
cfg = json.load(open(out + "/mirrored/config.json"))
diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(one.weights, mir.weights))
init = train(spec, data=(src, None), out_dir=out + "/init", epochs=1, batch_size=8, learning_rate=0.0, verbose=0, seed=3,
             strategy=make_strategy("one_device", devices=["/cpu:0"]))[0]
moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(one.trainable_weights, init.trainable_weights))
print(json.dumps({"replicas": cfg["replicas"], "diff": diff, "moved": moved}))
"""
    r = _run(_script(lfw_dir, body, prelude), {"OUT": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["replicas"] == 2
    assert res["moved"] > 1e-3, res  # training really changed the weights
    assert res["diff"] < 1e-3 * res["moved"], res


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_two_processes_on_loopback(lfw_dir, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    # the strategy is made at program start, before any TensorFlow op (the collective ops need it)
    prelude = """
from lmkzoo.training.run import make_strategy
strategy = make_strategy("multi_worker")
"""
    body = """
out = os.environ["OUT"]
net, hist = train(spec, data=(src, None), out_dir=out, epochs=1, batch_size=8, learning_rate=3e-3, verbose=0, seed=5,
                  strategy=strategy)
np.savez(out + "/weights.npz", *[np.asarray(w) for w in net.weights])
print(json.dumps({"loss": hist["loss"]}))
"""
    code = _script(lfw_dir, body, prelude)
    procs = []
    for i in range(2):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "OUT": str(tmp_path / f"w{i}"),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env))
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_o, e) in zip(procs, outs):
        assert p.returncode == 0, e[-3000:]
    w0 = np.load(tmp_path / "w0" / "weights.npz")
    w1 = np.load(tmp_path / "w1" / "weights.npz")
    assert len(w0.files) == len(w1.files) > 0
    for k in w0.files:  # both workers end with the same (all-reduced) model
        assert np.allclose(w0[k], w1[k], atol=1e-6)
    assert (tmp_path / "w0" / "final.keras").exists()  # the chief writes the final model
    assert not (tmp_path / "w1" / "final.keras").exists()


def test_step_schedule_follows_the_recipe():
    from lmkzoo.training.optimizers import build_optimizer

    recipe = {"epochs": 60, "optimizer": {"name": "adam", "learning_rate": 1e-4},
              "schedule": {"name": "step", "boundaries_epochs": [30, 50], "factor": 0.1}}
    sched = build_optimizer(recipe, steps_per_epoch=10)._learning_rate
    # the optimizer evaluates the schedule at its iteration count: step 300 is the first step of epoch 30
    assert np.isclose(float(sched(299)), 1e-4) and np.isclose(float(sched(300)), 1e-5) and np.isclose(float(sched(500)), 1e-6)
    short = build_optimizer(recipe, steps_per_epoch=10, epochs=6)._learning_rate  # decay points scale with the run
    assert np.isclose(float(short(29)), 1e-4) and np.isclose(float(short(30)), 1e-5) and np.isclose(float(short(50)), 1e-6)
    lamb = build_optimizer({"optimizer": {"name": "lamb", "learning_rate": 1e-3}}, 5)
    assert type(lamb).__name__ == "Lamb"
    from lmkzoo.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="unknown optimizer 'adagrad'"):
        build_optimizer({"optimizer": {"name": "adagrad"}}, 5)


def _torch_adam_l2(theta, grads, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam(weight_decay=wd) by hand (float64): g += wd·θ, then the bias-corrected Adam step."""
    theta = np.asarray(theta, np.float64).copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64) + wd * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta = theta - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return theta


def test_adam_weight_decay_is_pytorch_coupled_l2():
    """{name: adam, weight_decay: wd} is PyTorch's Adam(weight_decay=wd): wd·θ joins the gradient before the
    moments (AdamL2), while adamw stays Keras' decoupled AdamW."""
    import keras

    from lmkzoo.errors import InvalidArgumentError
    from lmkzoo.training.optimizers import AdamL2, build_optimizer

    theta0 = np.array([1.0, -2.0, 0.5, 0.0, 3.0], np.float32)
    grads = [np.array([0.1, 1e-3, -0.3, 0.0, 0.02], np.float32), np.array([-0.2, 5e-3, 0.1, 0.0, 0.02], np.float32)]
    lr, wd, b2 = 1e-2, 0.1, 0.999
    # one step: Keras' epsilon sits outside the bias correction, so eps_keras = eps_torch · sqrt(1 - β2) is exact
    opt = build_optimizer({"optimizer": {"name": "adam", "learning_rate": lr, "weight_decay": wd}}, 5)
    assert isinstance(opt, AdamL2) and opt.weight_decay == wd and opt.get_config()["weight_decay"] == wd
    opt.epsilon = 1e-8 * np.sqrt(1 - b2)
    var = keras.Variable(theta0)
    opt.apply_gradients([(keras.ops.convert_to_tensor(grads[0]), var)])
    expected = _torch_adam_l2(theta0, grads[:1], lr, wd)
    assert np.allclose(var.numpy(), expected, rtol=1e-6, atol=1e-7), (var.numpy(), expected)
    # e.g. the second weight: g = 1e-3 + 0.1 · (-2) = -0.199, so it moves by +lr (Adam's first step is lr·sign(g))
    assert var.numpy()[1] == pytest.approx(-2.0 + lr, abs=1e-6)
    # two steps with a negligible epsilon
    var2 = keras.Variable(theta0)
    opt2 = AdamL2(lr, weight_decay=wd, epsilon=1e-12)
    for g in grads:
        opt2.apply_gradients([(keras.ops.convert_to_tensor(g), var2)])
    assert np.allclose(var2.numpy(), _torch_adam_l2(theta0, grads, lr, wd, eps=1e-12), rtol=1e-5, atol=1e-7)
    # decoupled AdamW is a different update (θ ← θ − lr·wd·θ beside the plain Adam step of g)
    adamw = build_optimizer({"optimizer": {"name": "adamw", "learning_rate": lr, "weight_decay": wd}}, 5)
    assert type(adamw) is keras.optimizers.AdamW
    var3 = keras.Variable(theta0)
    adamw.apply_gradients([(keras.ops.convert_to_tensor(grads[0]), var3)])
    g1, c = 1e-3, np.sqrt(1 - b2)  # Keras' first Adam step: lr · c·g / (c·|g| + eps), eps = 1e-7 outside the correction
    assert var3.numpy()[1] == pytest.approx(-2.0 * (1 - lr * wd) - lr * c * g1 / (c * g1 + 1e-7), abs=1e-6)
    assert type(build_optimizer({"optimizer": {"name": "adam", "learning_rate": lr}}, 5)) is keras.optimizers.Adam
    # excluded variables get plain Adam; serialisation keeps the class and the decay; bad values are typed errors
    opt4 = AdamL2(lr, weight_decay=wd, epsilon=1e-12)
    var4 = keras.Variable(theta0, name="bias")
    opt4.exclude_from_weight_decay(var_names=["bias"])
    opt4.apply_gradients([(keras.ops.convert_to_tensor(grads[0]), var4)])
    assert np.allclose(var4.numpy(), _torch_adam_l2(theta0, grads[:1], lr, 0.0, eps=1e-12), rtol=1e-5, atol=1e-7)
    back = keras.optimizers.deserialize(keras.optimizers.serialize(opt2))
    assert type(back) is AdamL2 and back.weight_decay == wd and back.learning_rate.numpy() == pytest.approx(lr)
    for bad in (-1.0, "x", float("inf")):
        with pytest.raises(InvalidArgumentError, match=f"weight_decay must be a finite number >= 0; got {bad!r}"):
            AdamL2(lr, weight_decay=bad)


def test_lamb_adapts_weight_matrices_only():
    """The recipes' LAMB applies the trust ratio ‖w‖/‖u‖ to weight matrices; biases and learned embeddings take
    the plain Adam step, so a variable that starts at (or near) zero can grow (with Keras' Lamb the LOTR queries,
    N(0, 1e-4²), kept their norm and every landmark came out at one spot)."""
    import keras

    from lmkzoo.errors import InvalidArgumentError
    from lmkzoo.training.optimizers import Lamb, build_optimizer

    lr = 1e-2
    opt = build_optimizer({"optimizer": {"name": "lamb", "learning_rate": lr}}, 5)
    assert type(opt) is Lamb and opt.exclude_from_layer_adaptation == ("embeddings",)
    rng = np.random.default_rng(0)
    kernel = keras.Variable(rng.normal(size=(8, 4)).astype("float32"), name="kernel")
    bias = keras.Variable(np.zeros(4, "float32"), name="bias")
    queries = keras.Variable(rng.normal(scale=1e-4, size=(6, 4)).astype("float32"), name="embeddings")
    k0, q0 = kernel.numpy(), queries.numpy()
    grads = [np.ones((8, 4), "float32"), np.full(4, -0.5, "float32"), np.full((6, 4), 0.3, "float32")]
    steps = 20
    for _ in range(steps):
        opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], [kernel, bias, queries]))
    assert [opt.adapts(v) for v in (kernel, bias, queries)] == [True, False, False]
    # a constant gradient gives Adam steps of lr·sign(g): 20 of them move the bias and the queries by 0.2
    assert np.allclose(bias.numpy(), steps * lr, rtol=1e-3)
    assert np.allclose(queries.numpy(), q0 - steps * lr, atol=1e-3)
    # the kernel moves by lr·‖w‖ per step (its whole update has the norm of lr times the weights')
    first = np.linalg.norm(k0)
    assert np.linalg.norm(kernel.numpy() - k0) == pytest.approx(steps * lr * first, rel=0.15)
    # Keras' Lamb (every variable adapted) leaves the near-zero queries where they were
    plain, q = keras.optimizers.Lamb(lr), keras.Variable(q0, name="embeddings")
    for _ in range(steps):
        plain.apply_gradients([(keras.ops.convert_to_tensor(grads[2]), q)])
    assert np.linalg.norm(q.numpy()) < 1.3 * np.linalg.norm(q0)
    back = keras.optimizers.deserialize(keras.optimizers.serialize(Lamb(lr, exclude_from_layer_adaptation=["pos"])))
    assert type(back) is Lamb and back.exclude_from_layer_adaptation == ("pos",)
    with pytest.raises(InvalidArgumentError, match="exclude_from_layer_adaptation must be a list of non-empty names"):
        Lamb(lr, exclude_from_layer_adaptation="embeddings")


def test_mixed_bfloat16_runs(lfw_dir, tmp_path):
    body = """
net, hist = train(spec, data=(src, None), out_dir=os.environ["OUT"], epochs=1, batch_size=8, verbose=0, precision="mixed_bfloat16")
print(json.dumps({"loss": hist["loss"], "policy": keras.mixed_precision.global_policy().name}))
"""
    r = _run(_script(lfw_dir, body), {"OUT": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert np.isfinite(res["loss"][0]) and res["policy"] == "float32"


def test_validation_metric_follows_the_dataset_protocol():
    from lmkzoo.training.run import eval_protocol

    assert eval_protocol("jd_landmark/v1") == ("bbox", 0.08)
    assert eval_protocol("aflw19:train") == ("bbox", 0.07)
    assert eval_protocol("wflw") == ("inter_ocular", 0.10)
    assert eval_protocol("landmark_folder/lfw_teacher68") == ("inter_ocular", 0.10)
    assert eval_protocol(("train_ds", "val_ds")) == ("inter_ocular", 0.10)
    assert eval_protocol("jd_landmark/v1", "inter_ocular", 0.1) == ("inter_ocular", 0.1)
