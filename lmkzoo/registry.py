"""The model registry: ``zoo.yaml`` (repository root, packaged as ``lmkzoo/zoo.yaml``) → :class:`ModelSpec`.

``zoo.yaml`` is the only place that names models, their builder arguments, input contract, recipe, paper
numbers and weights. Names are ``arch[.tag]``; a bare ``arch`` resolves to its ``default_tag`` (else its
first tag). Reading the registry never imports TensorFlow, so ``lmkzoo list`` is instant.

Layout of an entry (every key is checked; an unknown key is an error)::

    pipnet_r18:
      family: pipnet                 # selects the family's builder and codec
      description: ...
      paper: {title: ..., url: ..., table: ...}
      builder: {backbone: resnet18, net_stride: 32, num_neighbors: 10}
      input: {size: [256, 256], mean: [...], std: [...], crop: {policy: box, scale: 1.1}}
      recipe: {epochs: 60, batch_size: 16, optimizer: {...}, schedule: {...}, augment: pipnet}
      default_tag: wflw
      tags:
        wflw:
          scheme: wflw98
          builder: {...}             # optional overrides, merged into the arch-level dicts
          paper_metrics: {nme_inter_ocular: 4.57}
          weights:                   # or absent / null: no pretrained weights
            url: https://.../pipnet_r18.wflw-1a2b3c4d.weights.h5   # or file: (shipped in the package)
            mirrors: [https://...]     # optional, tried in order after url
            sha256: <64 hex digits>    # mandatory: lmkzoo.hub.fetch verifies it before caching
            size: 49374520             # bytes (mandatory with url)
            format: .weights.h5        # or .keras
            license: Apache-2.0        # licence of the weights
            training_data: WFLW train (7,500 faces)
            data_license: CC BY-NC 4.0 (WFLW)   # licence of the training data
            made_by: trained by lmkzoo 0.1.0 with the pipnet_r18.wflw recipe | converted from <official checkpoint>
            source: https://github.com/jhb86253817/PIPNet (epoch59.pth)   # optional: what was converted
            metrics: {wflw_test_nme: 4.58}   # measured by lmkzoo (at least one)
            recipe: {...}              # optional: how it was trained
            version: 0.1.0             # optional
            litert: {file: weights/....tflite, sha256: ...}   # optional, with file: the LiteRT form shipped beside it

``lmkzoo publish RUN_DIR`` prints such an entry for a model trained with lmkzoo.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from lmkzoo.errors import InvalidArgumentError, UnknownModelError, did_you_mean

__all__ = [
    "ModelSpec",
    "WeightsSpec",
    "ZooFormatError",
    "zoo_path",
    "load_zoo",
    "list_models",
    "get_spec",
    "default_model_name",
    "family_default_models",
    "validate_zoo",
    "validate_weights_entry",
]

_ARCH_KEYS = {
    "family", "description", "paper", "builder", "input", "recipe", "default_tag", "tags", "notes",
}
_TAG_KEYS = {
    "scheme", "description", "builder", "input", "recipe", "paper_metrics", "weights", "notes", "embedded",
}
_INPUT_KEYS = {"size", "mean", "std", "crop", "channels"}
_CROP_KEYS = {"policy", "scale", "shift", "square", "template_scale", "template_shift", "detector_scale",
              "detector_shift"}
_CROP_POLICIES = {"box", "five_point", "five_point_hull", "none"}
_WEIGHTS_KEYS = {
    "url", "mirrors", "sha256", "size", "format", "file", "license", "training_data", "data_license",
    "made_by", "source", "metrics", "recipe", "version", "notes", "dtype", "litert",
}
# the model card: what the file is (sha256, format), its licence, the data it learnt from and that data's
# licence, how it was made, and what it measures
_WEIGHTS_REQUIRED = {"sha256", "format", "license", "training_data", "data_license", "made_by", "metrics"}


class ZooFormatError(InvalidArgumentError):
    """``zoo.yaml`` does not follow its schema (names the entry and key)."""


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    """A weights entry: where to get the file, its SHA-256, and its model card."""

    sha256: str
    format: str
    license: str
    training_data: str
    made_by: str
    url: str | None = None
    mirrors: tuple[str, ...] = ()
    size: int | None = None
    file: str | None = None  # a file inside the package (the embedded default model)
    data_license: str | None = None
    source: str | None = None  # the official checkpoint converted weights come from (URL, file, its licence)
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    recipe: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    version: str | None = None
    notes: str | None = None
    dtype: str | None = None
    #: the LiteRT form shipped in the package beside a packaged weights file: ``{"file": ..., "sha256": ...}``
    #: (the serving graph of these weights, float32 compute, dynamic batch; lmkzoo.export.cache)
    litert: Mapping[str, str] | None = None

    @property
    def filename(self) -> str:
        if self.file:
            return Path(self.file).name
        return Path(self.url.split("?")[0]).name if self.url else f"{self.sha256[:16]}.weights.h5"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything zoo.yaml says about one ``arch.tag``."""

    name: str  # "arch.tag"
    arch: str
    tag: str
    family: str
    scheme: str
    builder: Mapping[str, Any]
    input: Mapping[str, Any]
    recipe: Mapping[str, Any]
    description: str = ""
    paper: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    paper_metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    weights: WeightsSpec | None = None
    notes: str = ""
    embedded: bool = False

    @property
    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` of the network input."""
        s = self.input["size"]
        return (int(s), int(s)) if isinstance(s, int) else (int(s[0]), int(s[1]))

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.input.get("mean", (0.0, 0.0, 0.0)))

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.input.get("std", (1.0, 1.0, 1.0)))

    @property
    def crop(self) -> Mapping[str, Any]:
        return self.input.get("crop", {"policy": "box", "scale": 1.0})

    @property
    def has_weights(self) -> bool:
        return self.weights is not None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> ModelSpec:
        """The inverse of :meth:`to_dict` (a spec stored in a ``.keras`` file or an export's metadata)."""
        d = dict(d)
        w = d.pop("weights", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InvalidArgumentError(f"a stored model spec has unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        weights = WeightsSpec(**{**w, "mirrors": tuple(w.get("mirrors") or ())}) if w else None
        return cls(**d, weights=weights)


# ----------------------------------------------------------------------------------------------- loading
def zoo_path() -> Path:
    """Path of the packaged zoo.yaml (a link to the repository root's file in a source checkout)."""
    return Path(__file__).with_name("zoo.yaml")


def _deep_merge(base: Mapping, override: Mapping | None) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in (override or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _check_keys(where: str, d, allowed: set[str], required: set[str] = frozenset()):
    if not isinstance(d, Mapping):
        raise ZooFormatError(f"zoo.yaml {where}: expected a mapping; got {type(d).__name__} {d!r}")
    unknown = set(d) - allowed
    if unknown:
        raise ZooFormatError(f"zoo.yaml {where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(k for k, v in d.items() if v is not None)
    if missing:
        raise ZooFormatError(f"zoo.yaml {where}: missing required keys {sorted(missing)}")


def _parse_weights(where: str, w) -> WeightsSpec | None:
    if w is None:
        return None
    _check_keys(where, w, _WEIGHTS_KEYS, _WEIGHTS_REQUIRED)
    sha = str(w["sha256"]).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ZooFormatError(f"zoo.yaml {where}.sha256: must be 64 hex digits; got {w['sha256']!r}")
    if not w.get("url") and not w.get("file"):
        raise ZooFormatError(f"zoo.yaml {where}: a weights entry needs a url or a packaged file")
    for key in ("url", "file"):
        if w.get(key) is not None and (not isinstance(w[key], str) or not w[key].strip()):
            raise ZooFormatError(f"zoo.yaml {where}.{key}: must be a non-empty string; got {w[key]!r}")
    if w.get("url") and not str(w["url"]).startswith(("https://", "http://")):
        raise ZooFormatError(f"zoo.yaml {where}.url: must be an http(s) URL; got {w['url']!r}")
    mirrors = w.get("mirrors") or []
    if not isinstance(mirrors, (list, tuple)) or not all(isinstance(m, str) and m.startswith(("https://", "http://")) for m in mirrors):
        raise ZooFormatError(f"zoo.yaml {where}.mirrors: must be a list of http(s) URLs; got {mirrors!r}")
    if w.get("url") and (not isinstance(w.get("size"), int) or isinstance(w.get("size"), bool) or w["size"] <= 0):
        raise ZooFormatError(f"zoo.yaml {where}.size: a downloadable file needs its size in bytes; got {w.get('size')!r}")
    if w.get("format") not in (".weights.h5", ".keras"):
        raise ZooFormatError(f"zoo.yaml {where}.format: must be '.weights.h5' or '.keras'; got {w.get('format')!r}")
    name = str(w.get("file") or str(w.get("url")).split("?")[0])
    if not name.endswith(str(w["format"])):
        raise ZooFormatError(f"zoo.yaml {where}: the file {name.rsplit('/', 1)[-1]!r} does not end in its format {w['format']!r}")
    for key in ("license", "training_data", "data_license", "made_by"):
        if not isinstance(w[key], str) or not w[key].strip():
            raise ZooFormatError(f"zoo.yaml {where}.{key}: must be a non-empty string; got {w[key]!r}")
    metrics = w["metrics"]
    if (not isinstance(metrics, Mapping) or not metrics
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())):
        raise ZooFormatError(
            f"zoo.yaml {where}.metrics: must map each measured metric to a number (at least one); got {metrics!r}"
        )
    litert = w.get("litert")
    if litert is not None:
        _check_keys(f"{where}.litert", litert, {"file", "sha256"}, {"file", "sha256"})
        lsha = str(litert["sha256"]).lower()
        if len(lsha) != 64 or any(c not in "0123456789abcdef" for c in lsha):
            raise ZooFormatError(f"zoo.yaml {where}.litert.sha256: must be 64 hex digits; got {litert['sha256']!r}")
        if not str(litert["file"]).endswith(".tflite") or not w.get("file"):
            raise ZooFormatError(f"zoo.yaml {where}.litert: a packaged .tflite beside packaged weights (file:); got "
                                 f"{litert!r}")
        litert = {"file": str(litert["file"]), "sha256": lsha}
    return WeightsSpec(
        sha256=sha,
        format=str(w["format"]),
        license=str(w["license"]),
        training_data=str(w["training_data"]),
        made_by=str(w["made_by"]),
        url=w.get("url"),
        mirrors=tuple(w.get("mirrors") or ()),
        size=None if w.get("size") is None else int(w["size"]),
        file=w.get("file"),
        data_license=w.get("data_license"),
        source=w.get("source"),
        metrics=dict(w.get("metrics") or {}),
        recipe=dict(w.get("recipe") or {}),
        version=None if w.get("version") is None else str(w["version"]),
        notes=w.get("notes"),
        dtype=w.get("dtype"),
        litert=litert,
    )


def _parse_input(where: str, inp: Mapping):
    _check_keys(where, inp, _INPUT_KEYS, {"size"})
    size = inp["size"]
    ok = isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size))
    if not ok:
        raise ZooFormatError(f"zoo.yaml {where}.size: must be an int or [width, height]; got {size!r}")
    for key in ("mean", "std"):
        if key in inp and (not isinstance(inp[key], (list, tuple)) or len(inp[key]) != 3):
            raise ZooFormatError(f"zoo.yaml {where}.{key}: must be 3 numbers (RGB); got {inp[key]!r}")
    crop = inp.get("crop")
    if crop is not None:
        _check_keys(f"{where}.crop", crop, _CROP_KEYS, {"policy"})
        if crop["policy"] not in _CROP_POLICIES:
            raise ZooFormatError(
                f"zoo.yaml {where}.crop.policy: must be one of {sorted(_CROP_POLICIES)}; got {crop['policy']!r}"
            )


def _parse(raw: Mapping) -> tuple[dict[str, ModelSpec], dict[str, str], str | None]:
    from lmkzoo import schemes

    if not isinstance(raw, Mapping) or "models" not in raw:
        raise ZooFormatError("zoo.yaml must be a mapping with a 'models' key")
    # keys starting with "x-" hold YAML anchors shared by entries
    _check_keys("top level", {k: v for k, v in raw.items() if not str(k).startswith("x-")}, {"version", "default", "models"})
    specs: dict[str, ModelSpec] = {}
    defaults: dict[str, str] = {}
    for arch, entry in (raw["models"] or {}).items():
        _check_keys(arch, entry, _ARCH_KEYS, {"family", "builder", "input", "tags"})
        tags = entry["tags"]
        if not isinstance(tags, Mapping) or not tags:
            raise ZooFormatError(f"zoo.yaml {arch}.tags: needs at least one tag")
        default_tag = entry.get("default_tag") or next(iter(tags))
        if default_tag not in tags:
            raise ZooFormatError(f"zoo.yaml {arch}.default_tag: {default_tag!r} is not one of {sorted(tags)}")
        defaults[arch] = f"{arch}.{default_tag}"
        for tag, t in tags.items():
            where = f"{arch}.tags.{tag}"
            _check_keys(where, t, _TAG_KEYS, {"scheme"})
            if t["scheme"] not in schemes.names():
                raise ZooFormatError(f"zoo.yaml {where}.scheme: unknown scheme {t['scheme']!r}; known {schemes.names()}")
            inp = _deep_merge(entry["input"], t.get("input"))
            _parse_input(f"{where}.input", inp)
            specs[f"{arch}.{tag}"] = ModelSpec(
                name=f"{arch}.{tag}",
                arch=str(arch),
                tag=str(tag),
                family=str(entry["family"]),
                scheme=str(t["scheme"]),
                builder=_deep_merge(entry["builder"], t.get("builder")),
                input=inp,
                recipe=_deep_merge(entry.get("recipe") or {}, t.get("recipe")),
                description=str(t.get("description") or entry.get("description") or "").strip(),
                paper=dict(entry.get("paper") or {}),
                paper_metrics=dict(t.get("paper_metrics") or {}),
                weights=_parse_weights(f"{where}.weights", t.get("weights")),
                notes=str(t.get("notes") or entry.get("notes") or "").strip(),
                embedded=bool(t.get("embedded", False)),
            )
    default = raw.get("default")
    if default is not None and default not in specs and default not in defaults:
        raise ZooFormatError(f"zoo.yaml default: {default!r} is not a zoo model")
    return specs, defaults, default


def validate_weights_entry(entry: Mapping, *, where: str = "weights") -> WeightsSpec:
    """Validate one zoo.yaml ``weights:`` mapping (the model card); returns its :class:`WeightsSpec`."""
    if entry is None:
        raise ZooFormatError(f"zoo.yaml {where}: expected a weights mapping; got None")
    return _parse_weights(where, entry)


def validate_zoo(raw: Mapping) -> dict[str, ModelSpec]:
    """Validate a parsed zoo.yaml mapping; returns ``{arch.tag: ModelSpec}`` or raises :class:`ZooFormatError`."""
    return _parse(raw)[0]


@lru_cache(maxsize=4)
def _load(path: str):
    import yaml

    with open(path, encoding="utf-8") as f:
        # libyaml's loader where PyYAML has it: ten times faster than the pure-Python one (0.07 vs 0.7 s for the zoo,
        # most of `lmkzoo predict`'s start), the same safe constructors
        return _parse(yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def load_zoo(path=None) -> dict[str, ModelSpec]:
    """All specs of zoo.yaml, keyed by ``arch.tag``."""
    return dict(_load(str(path or zoo_path()))[0])


def _aliases(path=None) -> dict[str, str]:
    return dict(_load(str(path or zoo_path()))[1])


def default_model_name(path=None) -> str | None:
    """Name of the embedded default model (``lmkzoo.load()`` with no name), or None."""
    d = _load(str(path or zoo_path()))[2]
    return _aliases(path).get(d, d) if d else None


def family_default_models(path=None) -> dict[str, str]:
    """``{family: model}``: one representative zoo model per family (the embedded default for its family, else
    the default tag of the family's first arch in zoo.yaml). Export and runtime tests are parametrised over it,
    so a family that joins the zoo is covered by them automatically."""
    specs, aliases, default = _load(str(path or zoo_path()))
    out: dict[str, str] = {}
    if default:
        d = aliases.get(default, default)
        out[specs[d].family] = d
    for full in aliases.values():
        out.setdefault(specs[full].family, full)
    return dict(sorted(out.items()))


def list_models(pattern: str = "*", pretrained: bool = False, *, family: str | None = None) -> list[str]:
    """Sorted ``arch.tag`` names matching the fnmatch ``pattern`` (a bare arch pattern matches its tags).

    ``pretrained=True`` keeps only entries with weights; ``family`` filters by family.
    """
    specs = load_zoo()
    out = []
    for name, spec in specs.items():
        if not (fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(spec.arch, pattern)):
            continue
        if pretrained and not spec.has_weights:
            continue
        if family is not None and spec.family != family:
            continue
        out.append(name)
    return sorted(out)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``arch.tag`` (a bare ``arch`` resolves to its default tag)."""
    if not isinstance(name, str):
        raise InvalidArgumentError(f"a model name must be a string; got {type(name).__name__} {name!r}")
    specs = load_zoo()
    full = _aliases().get(name, name)
    if full in specs:
        return specs[full]
    names = sorted(set(specs) | set(_aliases()))
    hint = did_you_mean(name, names) or did_you_mean(name.split(".")[0], sorted(_aliases()))
    raise UnknownModelError(name, names, hint)
