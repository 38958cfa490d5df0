"""Crash-safe training state: what a killed run resumes from.

:class:`TrainingBackup` is lmkzoo's ``BackupAndRestore``. At the end of every epoch it writes one *state* folder,
``backup/state-NNNNN/`` (``NNNNN`` = epochs finished), holding

* ``model.weights.h5``: the model and optimizer variables (``Model.save_weights``),
* ``seed_states.npz``: the states of the random-op seed generators (dropout, noise), which ``save_weights``
  does not hold: without them a resumed run would redraw the masks of its first epochs,
* ``state.json``: the epoch, the per-epoch logs of every finished epoch (so ``history.json`` of a resumed run is
  the whole history) and the SHA-256 of each file above.

A state is written into a temporary folder and renamed into place (one atomic ``rename``), and the previous
state is kept until the new one is complete (``keep`` states in all): a kill at any moment leaves the last
complete state intact. At restart the newest state whose files all match their SHA-256 is restored; a damaged
one (a truncated file, a missing one, unreadable JSON) is skipped with a warning naming it and why, and the run
resumes from the last good state (from scratch when there is none). Runs written by older lmkzoo versions
(Keras' ``latest.weights.h5`` + ``training_metadata.json``) still resume.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from lmkzoo.errors import CheckpointMismatchError, StorageError
from lmkzoo.hub.cache import _fsync_dir, sha256_file

__all__ = ["TrainingBackup", "ResumeState", "has_resume_state"]

_PREFIX = "state-"
_WEIGHTS = "model.weights.h5"
_SEEDS = "seed_states.npz"
_META = "state.json"
# the layout of Keras' BackupAndRestore (lmkzoo before crash-safe states)
_LEGACY_WEIGHTS = "latest.weights.h5"
_LEGACY_META = "training_metadata.json"


@dataclasses.dataclass(frozen=True)
class ResumeState:
    """A verified training state: ``epoch`` epochs finished, their ``history``, and its files."""

    epoch: int
    weights: Path
    seeds: Path | None
    history: dict
    path: Path


def has_resume_state(folder) -> bool:
    """True when ``folder`` (a run folder, searched recursively) holds a training state a restart would resume."""
    folder = Path(folder)
    return folder.is_dir() and (any(folder.rglob(f"{_PREFIX}*/{_META}")) or any(folder.rglob(_LEGACY_META)))


def _seed_variables(model):
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _state_epoch(path: Path) -> int | None:
    try:
        return int(path.name[len(_PREFIX):])
    except ValueError:
        return None


def _check_state(path: Path) -> ResumeState:
    """The :class:`ResumeState` in ``path``; ``ValueError`` saying what is wrong with it."""
    try:
        meta = json.loads((path / _META).read_text())
        epoch, files = int(meta["epoch"]), dict(meta["files"])
    except FileNotFoundError:
        raise ValueError(f"{_META} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{_META} is unreadable ({type(e).__name__}: {e})") from None
    for name, expected in files.items():
        f = path / name
        if not f.is_file():
            raise ValueError(f"{name} is missing")
        actual = sha256_file(f)
        if actual != expected:
            raise ValueError(f"{name} has SHA-256 {actual[:12]}..., not the {expected[:12]}... recorded "
                             f"({f.stat().st_size} bytes: truncated or overwritten)")
    if _WEIGHTS not in files:
        raise ValueError(f"{_META} lists no {_WEIGHTS}")
    seeds = path / _SEEDS if _SEEDS in files else None
    return ResumeState(epoch, path / _WEIGHTS, seeds, dict(meta.get("history") or {}), path)


def _check_legacy(folder: Path) -> ResumeState:
    """The state of Keras' ``BackupAndRestore`` layout; ``ValueError`` when it is damaged."""
    try:
        epoch = int(json.loads((folder / _LEGACY_META).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{_LEGACY_META} is unreadable ({type(e).__name__}: {e})") from None
    weights = folder / _LEGACY_WEIGHTS
    try:
        import h5py

        with h5py.File(weights, "r"):
            pass
    except (OSError, ValueError) as e:
        raise ValueError(f"{_LEGACY_WEIGHTS} is not a readable HDF5 file ({e})") from None
    seeds = folder / _SEEDS
    return ResumeState(epoch, weights, seeds if seeds.is_file() else None, {}, folder)


class EpochSeconds(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` (the epoch's wall time, its validation included when it runs first) to the epoch's
    logs, so that the resume state, ``log.csv`` and the history keep every epoch's time across restarts."""

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and hasattr(self, "_t0"):
            logs["epoch_seconds"] = time.perf_counter() - self._t0


class TrainingBackup(keras.callbacks.Callback):
    """Back up the training state after every epoch, atomically; restore the newest intact one at the start.

    Use it as Keras' ``BackupAndRestore`` (one folder per run, not shared with other callbacks). Before ``fit``,
    :attr:`initial_epoch` says where the run resumes (the data pipeline starts there); :attr:`history` holds the
    per-epoch logs of every finished epoch, those before a restart included.

    Args:
        backup_dir: the folder of the states.
        keep: how many states to keep (at least 2: the previous one stays until the next is complete).
    """

    def __init__(self, backup_dir, keep: int = 2):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.keep = max(2, int(keep))
        self._resolved = False
        self._state: ResumeState | None = None
        self.history: dict[str, list] = {}

    # ------------------------------------------------------------------------------------------ restore
    @property
    def state(self) -> ResumeState | None:
        """The newest intact state (``None``: start from scratch). Damaged states are skipped with a warning."""
        if not self._resolved:
            self._state = self._find_state()
            self._resolved = True
        return self._state

    @property
    def initial_epoch(self) -> int:
        """Epochs finished by the state a restart resumes from (0 for a new run)."""
        return self.state.epoch if self.state is not None else 0

    def _find_state(self) -> ResumeState | None:
        if not self.backup_dir.is_dir():
            return None
        states = sorted((p for p in self.backup_dir.glob(f"{_PREFIX}*") if p.is_dir() and _state_epoch(p) is not None),
                        key=_state_epoch, reverse=True)
        candidates = [(p, _check_state) for p in states]
        if (self.backup_dir / _LEGACY_META).exists() or (self.backup_dir / _LEGACY_WEIGHTS).exists():
            candidates.append((self.backup_dir, _check_legacy))
        skipped = []
        for path, check in candidates:
            try:
                state = check(path)
            except ValueError as e:
                skipped.append(path)
                warnings.warn(f"lmkzoo: the training state {path} is damaged ({e}); skipping it", stacklevel=2)
                continue
            if skipped:
                warnings.warn(f"lmkzoo: resuming from the last intact training state, {path} (epoch {state.epoch})",
                              stacklevel=2)
            return state
        if skipped:
            warnings.warn(f"lmkzoo: no intact training state in {self.backup_dir}; the run starts again from epoch 0",
                          stacklevel=2)
        return None

    def on_train_begin(self, logs=None):
        state = self.state
        self.history = {k: list(v) for k, v in (state.history if state else {}).items()}
        if state is None:
            return
        model = self.model
        # its variables must exist to be loaded (a trainer that steps its own optimizers, e.g. the adversarial one,
        # leaves compile's default optimizer unused and unbuilt, as it was saved)
        if model.optimizer is not None and not model.optimizer.built and not getattr(model, "own_optimizers", False):
            model.optimizer.build(model.trainable_variables)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.load_weights(str(state.weights))
        except (ValueError, KeyError, OSError) as e:
            raise CheckpointMismatchError(
                f"the training state {state.path} does not fit this model ({type(e).__name__}: {e}); the run in "
                f"{self.backup_dir.parent} was started with other settings: use another output folder, or delete "
                f"{self.backup_dir} to start again") from None
        skipped = [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
        if skipped:  # Keras loads the rest and only warns: the run would go on with a fresh optimizer (moments, step)
            raise CheckpointMismatchError(
                f"the training state {state.path} does not fit this run: {skipped[0]} A changed optimizer or "
                f"learning-rate schedule (e.g. --lr, or a recipe's schedule) cannot resume the run in "
                f"{self.backup_dir.parent}: resume it with its settings (config.json), use another output folder, or "
                f"delete {self.backup_dir} to start again")
        for w in caught:  # the others as Keras gave them
            if "Skipping variable loading" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if state.seeds is not None:
            seed_vars = _seed_variables(model)
            with np.load(state.seeds) as saved:
                if len(saved.files) == len(seed_vars):
                    for i, v in enumerate(seed_vars):
                        v.assign(saved[f"s{i}"])
        model._initial_epoch = state.epoch  # what Keras' BackupAndRestore sets: fit starts at this epoch

    # --------------------------------------------------------------------------------------------- save
    def on_epoch_end(self, epoch, logs=None):
        for k, v in (logs or {}).items():
            try:
                self.history.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                pass
        try:
            self._save(epoch + 1)
        except OSError as e:
            raise StorageError.from_os_error(e, self.backup_dir, "write the training state into",
                                             "the previous state is intact; free space and start the run again") from e

    def _save(self, epoch: int):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        final = self.backup_dir / f"{_PREFIX}{epoch:05d}"
        tmp = self.backup_dir / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            self.model.save_weights(str(tmp / _WEIGHTS))
            with open(tmp / _SEEDS, "wb") as f:
                np.savez(f, **{f"s{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(_seed_variables(self.model))})
            files = {name: sha256_file(tmp / name) for name in (_WEIGHTS, _SEEDS)}
            meta = {"epoch": epoch, "files": files, "history": self.history}
            with open(tmp / _META, "w") as f:
                json.dump(meta, f)
            for name in (_WEIGHTS, _SEEDS, _META):
                with open(tmp / name, "rb") as f:
                    os.fsync(f.fileno())
            if final.exists():  # a state of this epoch from before a restart further back: replaced whole
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.backup_dir)
        self._prune(epoch)

    def _prune(self, epoch: int):
        states = sorted((p for p in self.backup_dir.glob(f"{_PREFIX}*") if _state_epoch(p) is not None),
                        key=_state_epoch)
        # older than the last `keep`, or newer than this epoch (a damaged future this run has been redoing)
        for old in [p for p in states if _state_epoch(p) <= epoch][:-self.keep] + [p for p in states if _state_epoch(p) > epoch]:
            shutil.rmtree(old, ignore_errors=True)
        for p in self.backup_dir.glob(".tmp-*"):  # left by a killed run
            if not p.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(p, ignore_errors=True)
        for name in (_LEGACY_WEIGHTS, _LEGACY_META, _SEEDS, _LEGACY_WEIGHTS + ".bkp", _LEGACY_META + ".bkp"):
            (self.backup_dir / name).unlink(missing_ok=True)  # an older run's state, now superseded
