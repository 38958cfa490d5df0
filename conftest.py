"""Test-suite configuration: offline, CPU-only, quiet TensorFlow, an isolated lmkzoo cache."""

import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("PYTHONHASHSEED", "0")
# never read or write the user's real cache from tests
os.environ["LMKZOO_HOME"] = tempfile.mkdtemp(prefix="lmkzoo-test-home-")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--run-large", action="store_true", default=False, help="run tests marked large")


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase (base of the TFDS DatasetBuilderTestCase) carries a deprecated ``test_session`` context
    # manager that pytest mistakes for a test and that always skips itself: not a test, so leave it out
    kept = [it for it in items if not (it.name == "test_session" and getattr(it, "cls", None) is not None)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[it for it in items if it not in kept])
        items[:] = kept
    if config.getoption("--run-large"):
        return
    skip_large = pytest.mark.skip(reason="large test: pass --run-large")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip_large)
