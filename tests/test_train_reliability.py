"""Issue 22, items 3 and 11: training states survive a kill during their write, a damaged one is skipped, the
history of a resumed run is whole, and ``steps_per_epoch`` that is not one pass keeps resumed runs exact."""

import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from lmkzoo.training.backup import TrainingBackup

TINY = {"backbone_args": {"width_multiplier": 0.125}, "extra_channels": 16, "num_neighbors": 4}


# ------------------------------------------------------------------------- the backup callback on a small model
def _small_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.3), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-2), loss="mse")
    return model


_X = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
_Y = _X.sum(1, keepdims=True)


def _fit(backup_dir, epochs, seed=0):
    model, cb = _small_model(seed), TrainingBackup(backup_dir)
    keras.utils.set_random_seed(seed)
    model.fit(_X, _Y, epochs=epochs, batch_size=8, shuffle=False, callbacks=[cb], verbose=0)
    return model, cb


def test_states_are_written_whole_and_the_last_two_kept(tmp_path):
    _, cb = _fit(tmp_path / "backup", 3)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["state-00002", "state-00003"]
    meta = json.loads((tmp_path / "backup" / "state-00003" / "state.json").read_text())
    assert meta["epoch"] == 3 and set(meta["files"]) == {"model.weights.h5", "seed_states.npz"}
    assert len(meta["history"]["loss"]) == 3 == len(cb.history["loss"])


def test_a_changed_optimizer_cannot_resume_a_run_silently(tmp_path):
    """Keras loads a state whose optimizer has other variables (a float rate is a variable, a schedule is not) with
    only a warning and a fresh optimizer; resuming must refuse it instead, naming the state and what changed."""
    from lmkzoo.errors import CheckpointMismatchError

    _fit(tmp_path / "backup", 1)  # Adam at a constant rate
    model, cb = _small_model(), TrainingBackup(tmp_path / "backup")
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.5)), loss="mse")
    with pytest.raises(CheckpointMismatchError, match=r"state-00001 does not fit this run.*learning-rate schedule"):
        model.fit(_X, _Y, epochs=2, batch_size=8, shuffle=False, callbacks=[cb], verbose=0)
    # the same optimizer resumes as before
    model, cb = _small_model(), TrainingBackup(tmp_path / "backup")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(_X, _Y, epochs=2, batch_size=8, shuffle=False, callbacks=[cb], verbose=0)
    assert len(cb.history["loss"]) == 2 and not [w for w in caught if "Skipping" in str(w.message)]
    assert int(model.optimizer.iterations) == 2 * 4  # the saved optimizer's 4 steps, then 4 more


@pytest.mark.parametrize("damage", ["truncate", "empty", "delete", "garble_json", "kill_before_rename"])
def test_a_damaged_state_is_skipped_with_a_message_and_the_run_resumes_from_the_last_good_one(tmp_path, damage):
    backup = tmp_path / "backup"
    _fit(backup, 2)
    last = backup / "state-00002"
    weights = last / "model.weights.h5"
    if damage == "truncate":  # a kill during the write of a non-atomic file
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "delete":
        weights.unlink()
    elif damage == "garble_json":
        (last / "state.json").write_text('{"epoch": 2, "fi')
    else:  # killed while writing epoch 2's state: it never got its final name, a temporary folder is left
        last.rename(backup / ".tmp-state-00002-99999")
    cb = TrainingBackup(backup)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = cb.initial_epoch
    messages = " | ".join(str(w.message) for w in caught)
    assert start == 1
    if damage != "kill_before_rename":
        assert f"the training state {last} is damaged" in messages and "resuming from the last intact" in messages
    # the resumed run ends where an uninterrupted one does
    model, _ = _small_model(), None
    keras.utils.set_random_seed(0)
    model.fit(_X, _Y, epochs=3, batch_size=8, shuffle=False, callbacks=[cb], verbose=0)
    assert len(cb.history["loss"]) == 3  # the epoch before the restart, then 2 and 3
    assert not list(backup.glob(".tmp-*"))  # leftovers of the kill are cleaned up


def test_no_intact_state_starts_again_from_epoch_0(tmp_path):
    backup = tmp_path / "backup"
    _fit(backup, 2)
    for state in backup.glob("state-*"):
        (state / "model.weights.h5").write_bytes(b"")
    with pytest.warns(UserWarning, match="no intact training state .* starts again from epoch 0"):
        assert TrainingBackup(backup).initial_epoch == 0


def test_an_empty_backup_of_the_old_layout_is_detected_not_a_h5py_traceback(tmp_path):
    """The issue's case: Keras' ``BackupAndRestore`` layout with a 0-byte ``latest.weights.h5`` after a kill."""
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"")
    (backup / "training_metadata.json").write_text('{"epoch": 4, "batch": 0}')
    with pytest.warns(UserWarning, match="latest.weights.h5 is not a readable HDF5 file"):
        assert TrainingBackup(backup).initial_epoch == 0
    _fit(backup, 1)  # and the run goes on, replacing the old layout
    assert sorted(p.name for p in backup.iterdir()) == ["state-00001"]


def test_an_intact_state_of_the_old_layout_still_resumes(tmp_path):
    model = _small_model()
    model.fit(_X, _Y, epochs=2, batch_size=8, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)])
    assert TrainingBackup(tmp_path / "backup").initial_epoch == 2


# ------------------------------------------------------------------------ steps_per_epoch and the data pipeline
def _stream(steps, start_epoch, epochs):
    from lmkzoo.data.pipeline import make_dataset

    images = np.random.default_rng(1).integers(0, 255, size=(10, 24, 24, 3), dtype=np.uint8)
    src = tf.data.Dataset.from_tensor_slices({"image": images, "bbox": np.tile([[2.0, 2.0, 22.0, 22.0]], (10, 1)).astype("float32")})
    ds = make_dataset(src, training=True, crop={"policy": "box", "scale": 1.0}, input_size=(16, 16), scheme="five_point",
                      mean=[0.5] * 3, std=[0.5] * 3, batch_size=4, augment="none", seed=3, start_epoch=start_epoch,
                      epochs=epochs, steps_per_epoch=steps)
    return [b[0].numpy() for b in ds]


@pytest.mark.parametrize("steps", [1, 2, 5])  # one pass of 10 examples in batches of 4 is 2 steps
def test_each_epoch_is_exactly_steps_per_epoch_batches_and_a_resumed_stream_is_the_same(steps):
    full = _stream(steps, 0, 3)
    assert len(full) == 3 * steps  # before the fix: 2 batches per epoch, whatever steps_per_epoch said
    resumed = _stream(steps, 1, 2)
    assert len(resumed) == 2 * steps
    for a, b in zip(full[steps:], resumed):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- a real training run, killed twice
def test_a_run_with_a_damaged_state_resumes_to_the_weights_and_history_of_an_uninterrupted_one(lfw_tfds, tmp_path):
    """steps_per_epoch (5) larger than one pass (32 faces / 8 = 4), a run stopped after 2 epochs whose last state is
    truncated (a kill during its write), and a kill after the last epoch's state (before history.json): the
    resumed run ends with the same weights as an uninterrupted one, and its history.json holds all 3 epochs."""
    import tensorflow_datasets as tfds  # noqa: F401

    from lmkzoo.testing.tiny import tiny_spec
    from lmkzoo.training.train import train

    src = lfw_tfds.as_dataset(split="train").take(32)
    spec = tiny_spec("pipnet_r18.300w", 64, **TINY)
    kw = dict(data=(src, None), batch_size=8, learning_rate=3e-3, verbose=0, seed=7, steps_per_epoch=int(os.environ.get("STEPS", 5)))
    full, _ = train(spec, out_dir=tmp_path / "full", epochs=3, **kw)
    run = tmp_path / "resumed"

    class Stop(keras.callbacks.Callback):  # the run dies after epoch 2 (its state written): same schedule as `full`
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(spec, out_dir=run, epochs=3, callbacks=[Stop()], **kw)
    weights = run / "backup" / "state-00002" / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="state-00002 is damaged"):
        resumed, hist = train(spec, out_dir=run, epochs=3, **kw)
    assert json.loads((run / "config.json").read_text())["start_epoch"] == 1
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-4)
    assert len(hist["loss"]) == 3
    # killed after the last epoch's state, before history.json: the restart trains nothing and still writes it whole
    (run / "history.json").unlink()
    train(spec, out_dir=run, epochs=3, **kw)
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 3


# ------------------------------------------------------------------------ a run folder of the old layout (issue 23)
#: config.json's keys as lmkzoo wrote them before issue 23 (the long 300-W training runs' folders have them)
OLD_CONFIG_KEYS = ["model", "data", "epochs", "batch_size", "learning_rate", "augment", "builder_overrides",
                   "steps_per_epoch", "seed", "strategy", "replicas", "precision", "start_epoch", "backbone_init"]


def test_a_run_folder_of_the_old_layout_resumes_and_publishes(lfw_tfds, tmp_path, monkeypatch):
    """A run folder as lmkzoo wrote it before the issue-23 moves and before crash-safe states: ``config.json``,
    ``log.csv``, ``ckpt/epochNNN.weights.h5`` and Keras' ``BackupAndRestore`` files in ``backup/``
    (``latest.weights.h5``, ``seed_states.npz``, ``training_metadata.json``). ``lmkzoo.train`` with the same folder
    resumes after its last finished epoch (weights and optimizer state restored), and
    ``training.publish.publish`` (what ``tools/ship_model.py`` calls) publishes the finished run."""
    import shutil

    import tensorflow_datasets as tfds  # noqa: F401
    from hub_server import TINY_ARCH, write_zoo

    import lmkzoo
    from lmkzoo.inference.loader import build_network
    from lmkzoo.registry import get_spec
    from lmkzoo.training import publish

    write_zoo(monkeypatch, tmp_path, {"tiny_run": {**TINY_ARCH, "tags": {"lfw": {"scheme": "ibug68"}}}})
    src = lfw_tfds.as_dataset(split="train").take(32)
    steps = 4
    kw = dict(data=(src, None), batch_size=8, learning_rate=3e-3, verbose=0, seed=7, steps_per_epoch=steps)
    run = tmp_path / "run"

    class Stop(keras.callbacks.Callback):  # the run dies after epoch 2 (its state written)
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lmkzoo.train("tiny_run.lfw", out_dir=run, epochs=3, callbacks=[Stop()], **kw)
    # the same folder in the old layout: Keras' BackupAndRestore files (the same Model.save_weights file, the seed
    # states in the same npz format) instead of state folders
    backup = run / "backup"
    state = backup / "state-00002"
    shutil.copyfile(state / "model.weights.h5", backup / "latest.weights.h5")
    shutil.copyfile(state / "seed_states.npz", backup / "seed_states.npz")
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    for p in backup.glob("state-*"):
        shutil.rmtree(p)
    config = json.loads((run / "config.json").read_text())
    assert list(config) == OLD_CONFIG_KEYS  # config.json keeps its layout
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["epoch001.weights.h5", "epoch002.weights.h5"]
    assert not (run / "final.keras").exists() and not (run / "history.json").exists()

    restored = {}

    class Probe(keras.callbacks.Callback):  # runs after the backup has restored the state
        def on_train_begin(self, logs=None):
            restored["iterations"] = int(self.model.optimizer.iterations)
            restored["weights"] = [np.asarray(w).copy() for w in self.model.weights]

    resumed, _ = lmkzoo.train("tiny_run.lfw", out_dir=run, epochs=3, callbacks=[Probe()], **kw)
    assert json.loads((run / "config.json").read_text())["start_epoch"] == 2
    assert restored["iterations"] == 2 * steps
    epoch2 = build_network(get_spec("tiny_run.lfw"), **config["builder_overrides"])
    epoch2.load_weights(str(run / "ckpt" / "epoch002.weights.h5"))
    for a, b in zip(epoch2.weights, restored["weights"]):
        np.testing.assert_array_equal(np.asarray(a), b)
    assert [r.split(",")[0] for r in (run / "log.csv").read_text().splitlines()[1:]] == ["0", "1", "2"]
    assert (run / "ckpt" / "epoch003.weights.h5").is_file() and (run / "final.keras").is_file()
    assert sorted(p.name for p in backup.iterdir()) == ["state-00003"]  # the old files are superseded

    pub = publish.publish(run, name="tiny_run.lfw", out_dir=tmp_path / "release", license="Apache-2.0",
                          data_license="LFW: no licence stated", training_data="landmark_folder/lfw_teacher68",
                          metrics={"pending": 0.0})
    assert pub.path.name == f"tiny_run.lfw-{pub.sha256[:8]}.weights.h5" and pub.path.is_file()
    net = build_network(get_spec("tiny_run.lfw"), **pub.builder)
    net.load_weights(str(pub.path))
    for a, b in zip(net.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
