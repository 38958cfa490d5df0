"""Shared fixtures: where the real face data lives (../shared/data next to the checkout)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The real-data folder: $LMKZOO_SHARED_DATA, else ../shared/data beside the checkout, else /work/shared/data."""
    candidates = [os.environ.get("LMKZOO_SHARED_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"]
    for c in candidates:
        if c and (Path(c) / "lfw_faces" / "teacher68.csv").exists():
            return Path(c)
    raise FileNotFoundError(
        "the shared real-face data was not found; set LMKZOO_SHARED_DATA to the folder holding lfw_faces/ and faces68_dlib/"
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def lfw_tfds(shared_data, tmp_path_factory):
    """The LFW teacher-labelled faces as a built TFDS dataset (landmark_folder/lfw_teacher68)."""
    from lmkzoo.testing.tiny import shared_tfds

    return shared_tfds("lfw_teacher68", shared_data / "lfw_faces", tmp_path_factory.mktemp("tfds"))
