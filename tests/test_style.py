import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed; pip install -e '.[dev]'")
    folders = ("certnet", "tests", "benchmarks", "demos", "examples")
    paths = [p for p in folders if (ROOT / p).exists()]  # a clean clone has no empty folders
    out = subprocess.run([ruff, "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_module_declares_all():
    missing = []
    for p in (ROOT / "certnet").rglob("*.py"):
        if p.name in ("__main__.py", "cli.py"):
            continue
        if "__all__" not in p.read_text():
            missing.append(str(p.relative_to(ROOT)))
    assert not missing, f"modules without __all__: {missing}"


def test_doctests():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--doctest-modules",
            "certnet/nn",
            "certnet/geometry.py",
            "certnet/__init__.py",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:]
