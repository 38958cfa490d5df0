"""Writes the pre-reorganisation fixtures of tests/test_architecture.py (run once, on main at a81c235, before
issue 23 moved modules): tiny ``.keras`` files of three families and the outputs they gave then.

    PYTHONPATH=<checkout at a81c235> python tests/data/pre_arch/make_fixtures.py
"""

import dataclasses
from pathlib import Path

import keras
import numpy as np

from lmkzoo.registry import get_spec

HERE = Path(__file__).parent
TINY = {
    "pipnet_lite.300w_lfw": {"backbone_args": {"width_multiplier": 0.0625}, "extra_channels": 8},
    "uglli_hg.300w": {"num_stacks": 2, "channels": 8, "growth_rate": 4, "neck_size": 2, "num_blocks": 2},
    "laplacekl_rcn.300w": {"width": 0.0625, "filters": 16},
}


def main():
    from lmkzoo.tasks.families import get_family

    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    out = {"x": x}
    for name, tiny in TINY.items():
        spec = get_spec(name)
        spec = dataclasses.replace(spec, input={**spec.input, "size": [64, 64]}, builder={**spec.builder, **tiny})
        keras.utils.set_random_seed(0)
        net = get_family(spec.family).build_network(spec)
        net.zoo_spec = spec.to_dict()
        stem = spec.family
        net.save(HERE / f"{stem}.keras")
        y = net(x, training=False)
        for key, value in net.decode(y).items():
            out[f"{stem}/{key}"] = keras.ops.convert_to_numpy(value)
    np.savez_compressed(HERE / "outputs.npz", **out)


if __name__ == "__main__":
    main()
