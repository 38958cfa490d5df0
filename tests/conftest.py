"""Shared fixtures: where the real face data lives (../shared/data next to the checkout)."""

from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    """The real-data folder: $LMKZOO_SHARED_DATA, else ../shared/data beside the checkout (an error says how to set it)."""
    from lmkzoo.testing.lfw import require_shared_data

    return require_shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("model_table")``: the module of ``tools/model_table.py`` (the tools are scripts, not a package)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def lfw_tfds(shared_data, tmp_path_factory):
    """The LFW teacher-labelled faces as a built TFDS dataset (landmark_folder/lfw_teacher68)."""
    from lmkzoo.testing.tiny import shared_tfds

    return shared_tfds("lfw_teacher68", shared_data / "lfw_faces", tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def ibug_300w_tfds(shared_data, tmp_path_factory):
    """300-W (shared/data/ibug_300w: 2,012 train faces, the 554 Common test faces) as a built TFDS dataset."""
    import warnings

    from datasets_tfds._common.testing import build
    from datasets_tfds.ibug_300w.ibug_300w_dataset_builder import PartialDatasetWarning

    data_dir = tmp_path_factory.mktemp("tfds300w")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = build("ibug_300w", data_dir, config="split1", manual_dir=shared_data / "ibug_300w")
    b.root_data_dir = str(data_dir)
    b.partial_warnings = [str(w.message) for w in caught if issubclass(w.category, PartialDatasetWarning)]
    return b
