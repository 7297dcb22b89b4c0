"""The README opens with the two commands, and CI runs exactly the test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    return re.findall(r"^python3 -m venv .*$", (ROOT / "README.md").read_text(), re.M)


def test_readme_opens_with_main_job_then_tests():
    main, tests = _commands()[:2]
    assert main.endswith("certnet demo pendulum")
    assert tests.endswith("python -m pytest")
    for cmd in (main, tests):
        assert "pip install torch==2.13.0 && pip install -e" in cmd


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci
