"""Round-trip checks for a model family's pieces, shared by lmkzoo's family tests and by tests of users' own families.

* :func:`check_keras_round_trip`: a network saved as ``.keras`` and loaded back is the same class with the same
  configuration and gives the same outputs;
* :func:`check_config_round_trip`: ``from_config(get_config())`` (or a Keras ``serialize`` / ``deserialize`` pair)
  gives the same class with the same configuration;
* :func:`check_codec_round_trip`: a codec's ``encode`` followed by its decode gives the points back.

They fail with ``AssertionError`` (plain ``assert``, so pytest shows the values) and return what they built, so a
test can go on checking family-specific details.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import keras
import numpy as np

__all__ = ["check_keras_round_trip", "check_config_round_trip", "check_codec_round_trip", "CodecRoundTrip"]


def _decoded(model, x):
    return model.decode(model(x))


def check_keras_round_trip(model, inputs, path, *, outputs: Callable[[Any, Any], dict] = _decoded,
                           keys=("landmarks",), atol: float = 1e-5, exact: bool = False, same_config: bool = True):
    """Save ``model`` to ``path`` (a ``.keras`` file), load it back and compare.

    Checks that the loaded model has the same class, the same ``get_config()`` (unless ``same_config=False``) and, for
    each of ``keys``, the same ``outputs(model, inputs)``: within ``atol`` (``np.allclose``), or bit for bit with
    ``exact=True``. ``outputs`` defaults to the decoded landmarks (``model.decode(model(inputs))``). Returns the
    loaded model.
    """
    model.save(path)
    back = keras.saving.load_model(path)
    assert type(back) is type(model), (type(back), type(model))
    if same_config:
        assert back.get_config() == model.get_config()
    a, b = outputs(model, inputs), outputs(back, inputs)
    for key in keys:
        x, y = keras.ops.convert_to_numpy(a[key]), keras.ops.convert_to_numpy(b[key])
        assert (np.array_equal(x, y) if exact else np.allclose(x, y, atol=atol)), (key, np.abs(x - y).max())
    return back


def check_config_round_trip(obj, *, via=None):
    """Rebuild ``obj`` from its configuration: ``type(obj).from_config(obj.get_config())``, or with ``via`` a module
    with ``serialize`` / ``deserialize`` (``keras.losses``: the registered-name path a saved model takes). Checks the
    class and ``get_config()`` of the copy, and returns it."""
    back = via.deserialize(via.serialize(obj)) if via is not None else type(obj).from_config(obj.get_config())
    assert type(back) is type(obj), (type(back), type(obj))
    assert back.get_config() == obj.get_config()
    return back


class CodecRoundTrip(NamedTuple):
    """What :func:`check_codec_round_trip` built: the encoded ``targets``, the ``outputs`` the codec decoded (the
    targets themselves unless ``to_outputs`` made network outputs of them) and the ``decoded`` dict."""

    targets: dict
    outputs: Any
    decoded: dict


def check_codec_round_trip(codec, points, visible=None, *, atol: float, rtol: float = 1e-5,
                           to_outputs: Callable[[dict], Any] | None = None) -> CodecRoundTrip:
    """``codec.encode(points[, visible])``, then the codec's decode (``codec(...)``) of the targets, or of
    ``to_outputs(targets)`` for codecs whose decode reads network outputs rather than targets, gives ``points`` back:
    every coordinate within ``atol + rtol * |point|``."""
    targets = codec.encode(points) if visible is None else codec.encode(points, visible)
    outputs = targets if to_outputs is None else to_outputs(targets)
    decoded = codec(outputs)
    got, want = keras.ops.convert_to_numpy(decoded["landmarks"]), np.asarray(points)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got - want)
    assert np.all(err < atol + rtol * np.abs(want)), err.max()
    return CodecRoundTrip(targets, outputs, decoded)
