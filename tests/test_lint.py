"""The linter passes: ``ruff check`` with the configuration in pyproject.toml ([tool.ruff]) over the whole
repository (code, tests, tools, benchmarks, notebooks). CI runs it through this test.

Fix findings with ``ruff check --fix`` (safe fixes) or by hand; the configuration explains each exclusion."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]' (the test extra pins it)")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"ruff check found problems:\n{out.stdout[-20000:]}{out.stderr[-5000:]}"
