"""Publishing a trained model's weights: :func:`publish` turns a training run folder (or a ``.keras`` /
``.weights.h5`` file) into a release file named by its SHA-256 and the zoo.yaml card that describes it
(``tools/ship_model.py`` and ``lmkzoo publish`` drive it). Downloads are :mod:`lmkzoo.hub`'s.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.hub import DEFAULT_URL_TEMPLATE, sha256_file

__all__ = ["publish", "PublishedWeights"]


@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    """What :func:`publish` wrote: the weights file and the zoo.yaml lines that describe it."""

    name: str  # arch.tag
    path: Path
    sha256: str
    size: int
    url: str
    entry: Mapping[str, Any]  # the ``weights:`` mapping
    builder: Mapping[str, Any]  # tag-level ``builder:`` overrides the weights need (may be empty)

    def to_yaml(self) -> str:
        """The zoo.yaml text to merge under ``models.<arch>.tags.<tag>``."""
        import yaml

        arch, tag = self.name.split(".", 1)
        body: dict[str, Any] = {}
        if self.builder:
            body["builder"] = _plain(dict(self.builder))
        body["weights"] = _plain(dict(self.entry))
        text = yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120)
        indented = "".join("        " + line + "\n" for line in text.splitlines())
        return f"# zoo.yaml: merge into models.{arch}.tags.{tag}\n      {tag}:\n{indented}"


def _plain(value):
    """numpy scalars/arrays and tuples → plain YAML-safe Python values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return value


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise InvalidArgumentError(f"{path} is not valid JSON ({e})") from None


def _run_metrics(history: Mapping) -> dict[str, float]:
    out = {}
    for key in ("val_nme", "val_fr", "val_auc"):
        values = history.get(key)
        if values:
            out[key] = round(float(values[-1]), 6)
    return out


def _codec_config(obj) -> dict:
    codec = getattr(obj, "codec", obj)
    cfg = dict(codec.get_config())
    for k in ("name", "trainable", "dtype"):
        cfg.pop(k, None)
    return json.loads(json.dumps(_plain(cfg)))


def publish(source, *, license: str, data_license: str, name: str | None = None, out_dir=None,
            url_template: str = DEFAULT_URL_TEMPLATE, training_data: str | None = None, made_by: str | None = None,
            metrics: Mapping[str, float] | None = None, builder_overrides: Mapping[str, Any] | None = None,
            mirrors: Iterable[str] = ()) -> PublishedWeights:
    """Write the ``.weights.h5`` file of a model trained with lmkzoo and the zoo.yaml entry describing it.

    Args:
        source: a training run folder (``lmkzoo.training.train.train`` output: ``final.keras`` or
            ``final.weights.h5``, with ``config.json`` and ``history.json``), a ``.keras`` file written by
            lmkzoo, or a ``.weights.h5`` file (then ``name`` is needed unless a ``config.json`` sits beside it).
        license: licence of the published weights (e.g. ``"Apache-2.0"``, ``"CC-BY-NC-4.0"``).
        data_license: licence of the training data.
        name: the zoo ``arch.tag`` the weights are for (default: from the run's config or the .keras file).
        out_dir: folder for the weights file (default: the run folder, else the source's folder).
        url_template: where the file will be uploaded; ``{version}``, ``{filename}``, ``{name}``, ``{arch}``,
            ``{tag}``, ``{sha256}``, ``{sha8}`` are filled in (``mirrors`` are templates too).
        training_data, made_by, metrics: model card fields; by default taken from the run's ``config.json``
            (data, recipe) and ``history.json`` (last ``val_nme``/``val_fr``/``val_auc``). Metrics are required.
        builder_overrides: zoo ``builder`` arguments the weights were trained with (default: the run's
            ``builder_overrides``; for a ``.keras`` file, a ``meanface`` differing from the zoo default is found
            from its codec). They are printed as the tag's ``builder:`` so ``lmkzoo.load`` rebuilds the same net.
    Returns:
        :class:`PublishedWeights`; ``.to_yaml()`` is the text for zoo.yaml. The file is named
        ``<arch.tag>-<sha256[:8]>.weights.h5`` and is checked to load into the zoo model it names (and, from a
        ``.keras`` source, to give identical outputs).
    """
    import numpy as np

    from lmkzoo import __version__
    from lmkzoo.families.base import build_network, get_family
    from lmkzoo.inference.loader import _load_keras_file
    from lmkzoo.registry import get_spec, validate_weights_entry

    src = Path(source).expanduser()
    if not src.exists():
        raise InvalidArgumentError(f"nothing to publish at {src}: give a training run folder, a .keras or a .weights.h5 file")
    run_dir = src if src.is_dir() else src.parent
    keras_file = weights_file = None
    if src.is_dir():
        if (src / "final.keras").is_file():
            keras_file = src / "final.keras"
        elif (src / "final.weights.h5").is_file():
            weights_file = src / "final.weights.h5"
        else:
            raise InvalidArgumentError(f"{src} holds neither final.keras nor final.weights.h5 (a training run folder has them)")
    elif src.name.endswith(".keras"):
        keras_file = src
    elif src.name.endswith(".weights.h5"):
        weights_file = src
    else:
        raise InvalidArgumentError(f"publish takes a run folder, a .keras or a .weights.h5 file; got {src}")
    config = _read_json(run_dir / "config.json")
    history = _read_json(run_dir / "history.json")

    if name is None:
        name = config.get("model")
    source_net = None
    if name is None and keras_file is not None:
        source_net = _load_keras_file(keras_file)
        name = (source_net.zoo_spec or {}).get("name")
    if name is None:
        raise InvalidArgumentError(f"cannot tell which zoo model {src} is for: pass name='arch.tag'")
    spec = get_spec(name)
    name = spec.name
    if config.get("model") is not None and get_spec(config["model"]).name != name:
        raise InvalidArgumentError(f"{run_dir / 'config.json'} says the run trained {config['model']!r}, not {name!r}")

    # the model card first (cheap): every mistake is reported before any model is built
    arch, tag = name.split(".", 1)

    def make_url(template: str, sha: str, filename: str) -> str:
        try:
            return template.format(version=__version__, filename=filename, name=name, arch=arch, tag=tag,
                                       sha256=sha, sha8=sha[:8])
        except (KeyError, IndexError, ValueError) as e:
            raise InvalidArgumentError(
                f"URL template {template!r} uses an unknown field ({e}); allowed: {{version}} {{filename}} "
                "{name} {arch} {tag} {sha256} {sha8}"
            ) from None

    if metrics is None:
        metrics = {f"{config.get('data', 'validation')}:{k}": v for k, v in _run_metrics(history).items()}
    if not metrics:
        raise InvalidArgumentError(
            f"a zoo weights entry needs measured metrics and {src} has no history.json with validation metrics: "
            "pass metrics={'<data>:<metric>': value} (CLI: --metric KEY=VALUE)"
        )
    if training_data is None:
        training_data = config.get("data") if config.get("data") not in (None, "<datasets>") else None
    if not training_data:
        raise InvalidArgumentError(f"cannot tell what {src} was trained on: pass training_data")
    recipe = {k: config[k] for k in ("epochs", "batch_size", "learning_rate", "augment", "steps_per_epoch", "seed")
              if config.get(k) is not None}
    if made_by is None:
        made_by = f"trained by lmkzoo {__version__} with the {name} recipe" + (
            f" ({', '.join(f'{k} {v}' for k, v in recipe.items())})" if recipe else "")

    def make_entry(sha: str, size: int, filename: str) -> dict:
        entry = {
            "url": make_url(url_template, sha, filename),
            **({"mirrors": [make_url(m, sha, filename) for m in mirrors]} if mirrors else {}),
            "sha256": sha,
            "size": size,
            "format": ".weights.h5",
            "license": license,
            "training_data": training_data,
            "data_license": data_license,
            "made_by": made_by,
            "metrics": {str(k): float(v) for k, v in dict(metrics).items()},
            **({"recipe": recipe} if recipe else {}),
            "version": __version__,
        }
        validate_weights_entry(entry, where=f"{name}.weights")
        return entry

    mirrors = list(mirrors or ())
    make_entry("0" * 64, 1, f"{name}-00000000.weights.h5")  # raises on a bad card

    # the weights: rebuilt exactly as lmkzoo.load will rebuild them
    overrides = dict(builder_overrides if builder_overrides is not None else (config.get("builder_overrides") or {}))
    family = get_family(spec.family)
    if keras_file is not None and source_net is None:
        source_net = _load_keras_file(keras_file)

    def zoo_codec_config():  # the codec lmkzoo.load would build for these overrides
        return _codec_config(family.build_codec(spec, **overrides))

    if source_net is not None:
        b = _codec_config(source_net)
        a = zoo_codec_config()
        if a != b and builder_overrides is None and b.get("meanface") is not None \
                and "meanface" in family.builder_keys and "meanface" not in overrides:
            overrides["meanface"] = b["meanface"]  # trained with its own mean face: the zoo entry must say so
            a = zoo_codec_config()
        if a != b:
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise InvalidArgumentError(
                f"{keras_file}'s codec differs from {name} built with builder overrides {sorted(overrides)} in {diff}; "
                "pass the builder_overrides it was trained with"
            )

    net = build_network(spec, **overrides)
    out = Path(out_dir).expanduser() if out_dir is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{os.getpid()}-{name}.weights.h5"
    try:
        if source_net is not None:
            source_net.save_weights(str(tmp))
        else:
            shutil.copyfile(weights_file, tmp)
        try:
            net.load_weights(str(tmp))
        except (ValueError, KeyError) as e:
            raise InvalidArgumentError(
                f"the weights of {src} do not fit {name} built with builder overrides {overrides or '{}'}: {e}"
            ) from None
        if source_net is not None:  # the published file must reproduce the model exactly
            w, h = spec.input_size
            x = np.random.default_rng(0).normal(size=(1, h, w, 3)).astype("float32")
            ya, yb = source_net(x, training=False), net(x, training=False)
            worst = max(float(np.max(np.abs(np.asarray(ya[k]) - np.asarray(yb[k])))) for k in ya)
            if worst > 1e-5:
                raise InvalidArgumentError(f"{name} rebuilt from the published weights differs from {src} by {worst:g}")
        sha = sha256_file(tmp)
        filename = f"{name}-{sha[:8]}.weights.h5"
        entry = make_entry(sha, tmp.stat().st_size, filename)
        final = out / filename
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return PublishedWeights(name=name, path=final, sha256=sha, size=entry["size"], url=entry["url"], entry=entry,
                            builder=overrides)
