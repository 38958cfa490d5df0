"""The README keeps exactly two set-up commands at its top, and CI runs the second one."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip()]


def test_readme_has_exactly_two_setup_commands():
    cmds = _setup_commands()
    assert len(cmds) == 2, cmds
    main_cmd, test_cmd = cmds
    assert "pip install" in main_cmd and "lmkzoo" in main_cmd.split("&&")[-1]
    assert 'pip install -e ".[test]"' in test_cmd and test_cmd.rstrip().endswith("pytest -q")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    pattern = re.search(r"sed -n '(.+?)' README.md", ci).group(1)
    out = subprocess.run(["sed", "-n", pattern, str(ROOT / "README.md")], capture_output=True, text=True).stdout
    assert out.strip().splitlines()[0] == _setup_commands()[1]
