import copy

import pytest
import yaml

from lmkzoo import registry
from lmkzoo.errors import UnknownModelError
from lmkzoo.registry import ZooFormatError


def _raw():
    with open(registry.zoo_path()) as f:
        return yaml.safe_load(f)


def test_every_zoo_entry_validates_and_resolves():
    specs = registry.validate_zoo(_raw())
    assert specs, "zoo.yaml declares no model"
    for name, spec in specs.items():
        assert name == f"{spec.arch}.{spec.tag}"
        assert registry.get_spec(name) == spec
        w, h = spec.input_size
        assert w > 0 and h > 0 and len(spec.mean) == 3 and len(spec.std) == 3
        if spec.weights is not None:
            assert len(spec.weights.sha256) == 64


def test_packaged_zoo_is_the_repository_zoo():
    # lmkzoo/zoo.yaml links to the repository root's zoo.yaml: one registry, no copy
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "zoo.yaml"
    assert registry.zoo_path().resolve() == root.resolve()


def test_bare_arch_resolves_to_default_tag():
    spec = registry.get_spec("pipnet_r18")  # the shipped 300-W weights are the flagship's default
    assert spec.name == "pipnet_r18.300w" and spec.scheme == "ibug68" and spec.weights is not None
    assert registry.get_spec("pipnet_r18.wflw").scheme == "wflw98"
    assert registry.get_spec("pipnet_r18.300w").scheme == "ibug68"
    assert registry.get_spec("pipnet_r18.300w").crop["scale"] == 1.1


def test_list_models_patterns():
    names = registry.list_models("pipnet*")
    assert "pipnet_r18.wflw" in names and "pipnet_r18.300w" in names and names == sorted(names)
    assert registry.list_models("pipnet_r18") == registry.list_models("pipnet_r18.*")
    assert registry.list_models("*.cofw") and all(n.endswith(".cofw") for n in registry.list_models("*.cofw"))
    assert registry.list_models("no_such_model*") == []
    assert all(registry.get_spec(n).has_weights for n in registry.list_models(pretrained=True))
    assert set(registry.list_models(family="pipnet")) <= set(registry.list_models())


def test_unknown_model_error_suggests():
    with pytest.raises(UnknownModelError) as e:
        registry.get_spec("pipnet_r18.helen")
    assert "'pipnet_r18.helen'" in str(e.value) and "pipnet_r18.wflw" in str(e.value)


def _weights():
    return {
        "url": "https://example.invalid/w.weights.h5",
        "sha256": "a" * 64,
        "format": ".weights.h5",
        "size": 1234,
        "license": "Apache-2.0",
        "training_data": "WFLW",
        "data_license": "CC BY-NC 4.0",
        "made_by": "trained by lmkzoo",
        "metrics": {"wflw_test_nme": 4.6},
    }


def test_schema_rejects_unknown_keys_and_missing_sha():
    raw = _raw()
    bad = copy.deepcopy(raw)
    bad["models"]["pipnet_r18"]["colour"] = "red"
    with pytest.raises(ZooFormatError, match=r"pipnet_r18: unknown keys \['colour'\]"):
        registry.validate_zoo(bad)
    bad = copy.deepcopy(raw)
    bad["models"]["pipnet_r18"]["tags"]["wflw"]["weights"] = {k: v for k, v in _weights().items() if k != "sha256"}
    with pytest.raises(ZooFormatError, match=r"missing required keys \['sha256'\]"):
        registry.validate_zoo(bad)
    bad["models"]["pipnet_r18"]["tags"]["wflw"]["weights"] = {**_weights(), "sha256": "xyz"}
    with pytest.raises(ZooFormatError, match="64 hex digits"):
        registry.validate_zoo(bad)
    good = copy.deepcopy(raw)
    good["models"]["pipnet_r18"]["tags"]["wflw"]["weights"] = _weights()
    assert registry.validate_zoo(good)["pipnet_r18.wflw"].weights.sha256 == "a" * 64
    bad = copy.deepcopy(raw)
    bad["models"]["pipnet_r18"]["tags"]["wflw"]["scheme"] = "wflw_98"
    with pytest.raises(ZooFormatError, match="unknown scheme 'wflw_98'"):
        registry.validate_zoo(bad)
    bad = copy.deepcopy(raw)
    bad["models"]["pipnet_r18"]["tags"]["wflw"]["input"] = {"crop": {"policy": "magic"}}
    with pytest.raises(ZooFormatError, match="crop.policy"):
        registry.validate_zoo(bad)
    bad = copy.deepcopy(raw)
    bad["models"]["pipnet_r18"]["default_tag"] = "helen"
    with pytest.raises(ZooFormatError, match="default_tag"):
        registry.validate_zoo(bad)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"data_license": None}, r"missing required keys \['data_license'\]"),
        ({"metrics": None}, r"missing required keys \['metrics'\]"),
        ({"metrics": {}}, "metrics: must map each measured metric to a number"),
        ({"metrics": {"nme": "low"}}, "metrics: must map each measured metric to a number"),
        ({"size": None}, "size: a downloadable file needs its size in bytes; got None"),
        ({"size": -3}, "size: a downloadable file needs its size"),
        ({"url": "ftp://example.invalid/w.weights.h5"}, "url: must be an http"),
        ({"mirrors": ["/tmp/w.weights.h5"]}, "mirrors: must be a list of http"),
        ({"format": ".pth"}, "format: must be '.weights.h5' or '.keras'"),
        ({"url": "https://example.invalid/w.keras"}, "does not end in its format '.weights.h5'"),
        ({"license": " "}, "license: must be a non-empty string"),
        ({"made_by": 3}, "made_by: must be a non-empty string"),
        ({"licence": "MIT"}, r"unknown keys \['licence'\]"),
    ],
)
def test_model_card_is_complete(change, message):
    entry = {**_weights(), **change}
    with pytest.raises(ZooFormatError, match=message):
        registry.validate_weights_entry(entry, where="m.t.weights")
    card = registry.validate_weights_entry({**_weights(), "source": "PIPNet epoch59.pth (MIT)"})
    assert card.source == "PIPNet epoch59.pth (MIT)" and card.metrics == {"wflw_test_nme": 4.6}
    assert card.filename == "w.weights.h5" and card.size == 1234


def test_every_entry_names_a_known_family_and_valid_builder_keys():
    """Each entry's family is registered and its builder arguments (entry + tag) are keys that family accepts,
    so a typo in a builder key fails here instead of at build time."""
    import dataclasses

    from lmkzoo.errors import InvalidArgumentError
    from lmkzoo.families.base import family_names, get_family

    known = family_names()
    specs = registry.validate_zoo(_raw())
    for name, spec in specs.items():
        assert spec.family in known, (name, spec.family, known)
        family = get_family(spec.family)
        args = family.builder_args(spec)
        assert set(spec.builder) <= set(args) and set(args) == set(family.builder_keys), name
    # the check is real: a misspelt key is refused, naming it and the allowed keys
    spec = registry.get_spec("uglli_hg")
    typo = dataclasses.replace(spec, builder={**spec.builder, "num_stack": 2})
    with pytest.raises(InvalidArgumentError, match=r"uglli: unknown builder arguments \['num_stack'\]; allowed: .*'num_stacks'"):
        get_family("uglli").builder_args(typo)
