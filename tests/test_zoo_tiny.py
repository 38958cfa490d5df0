"""Every zoo entry builds at a tiny size and runs a forward pass + decode with the right output shape (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest

from lmkzoo import schemes
from lmkzoo.registry import get_spec, list_models
from lmkzoo.testing.tiny import tiny_zoo_spec


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_entry_builds_tiny_and_predicts(name):
    import keras

    from lmkzoo.families import build_network

    spec = tiny_zoo_spec(name)
    keras.utils.set_random_seed(0)
    net = build_network(spec)
    w, h = spec.input_size
    out = net.decode(net(np.zeros((1, h, w, 3), np.float32), training=False))
    k = schemes.get(get_spec(name).scheme).num_points
    assert tuple(out["landmarks"].shape) == (1, k, 2), name
