import pytest

from lmkzoo import errors


def test_every_error_is_an_lmkzoo_error_and_a_builtin():
    pairs = {
        errors.InvalidArgumentError: ValueError,
        errors.ShapeMismatchError: ValueError,
        errors.UnknownSchemeError: KeyError,
        errors.UnknownModelError: KeyError,
        errors.WeightsUnavailableError: OSError,
        errors.ChecksumMismatchError: OSError,
        errors.InvalidImageError: ValueError,
        errors.NoFaceFoundError: LookupError,
        errors.DatasetFormatError: ValueError,
        errors.CheckpointMismatchError: ValueError,
    }
    for cls, builtin in pairs.items():
        assert issubclass(cls, errors.LmkzooError) and issubclass(cls, builtin)


def test_messages_name_the_value_and_the_allowed_ones():
    e = errors.UnknownModelError("pipnet_r19", ["pipnet_r18.wflw", "pipnet_r50.wflw"], "did you mean pipnet_r18?")
    assert str(e) == (
        "unknown model 'pipnet_r19' (did you mean pipnet_r18?); zoo models: 'pipnet_r18.wflw', 'pipnet_r50.wflw'"
    )
    assert e.name == "pipnet_r19"
    e = errors.UnknownSchemeError("x", [str(i) for i in range(40)])
    assert "(40 in total)" in str(e)  # long lists are shortened, not dumped
    e = errors.ChecksumMismatchError("/tmp/a.h5", "ab" * 32, "cd" * 32, url="http://127.0.0.1/a.h5")
    assert "ab" * 32 in str(e) and "cd" * 32 in str(e) and "http://127.0.0.1/a.h5" in str(e)
    assert e.expected == "ab" * 32 and e.actual == "cd" * 32
    e = errors.DatasetFormatError("expected 68 points, got 67", path="a/b.pts", line=71)
    assert str(e) == "a/b.pts, line 71: expected 68 points, got 67"
    assert (e.path, e.line) == ("a/b.pts", 71)
    e = errors.WeightsUnavailableError("offline", url="http://x/y", cache_path="/c/y")
    assert e.url == "http://x/y" and e.cache_path == "/c/y"


def test_key_errors_are_not_quoted():
    with pytest.raises(KeyError) as info:
        raise errors.UnknownSchemeError("abc", ["ibug68"])
    assert str(info.value).startswith("unknown landmark scheme 'abc'")
