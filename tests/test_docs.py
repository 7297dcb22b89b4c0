"""The documentation builds with ``mkdocs build --strict`` and its code examples run."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Pages whose ```python blocks are examples a user would paste (owned by the docs; the other
# pages are checked by their owners' tests).
PAGES = [
    "index.md",
    "getting-started.md",
    "concepts-normalisation.md",
    "concepts-mm.md",
    "concepts-certificates.md",
    "howto-plant.md",
    "howto-torch-network.md",
    "howto-onnx.md",
    "api.md",
]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _pages():
    for page in PAGES:
        blocks = FENCE.findall((DOCS / page).read_text())
        if blocks:
            yield pytest.param(page, blocks, id=page)


def test_mkdocs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).with_name("mkdocs"))
    out = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_nav_page_exists():
    nav = re.findall(r":\s*([\w\-/]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert "getting-started.md" in nav
    assert [p for p in nav if not (DOCS / p).is_file()] == []


@pytest.mark.parametrize("page,blocks", list(_pages()))
def test_code_examples_run(page, blocks, tmp_path, monkeypatch):
    """The ```python blocks of a page run in order in one namespace, as a reader would paste
    them into one session (the tutorial builds on earlier steps)."""
    monkeypatch.chdir(tmp_path)  # examples write files
    namespace: dict = {"__name__": "__main__"}
    for k, code in enumerate(blocks):
        exec(compile(code, f"{page}#block{k}", "exec"), namespace)


def test_getting_started_quotes_the_readme_commands():
    cmds = re.findall(r"^python3 -m venv .*$", (ROOT / "README.md").read_text(), re.M)
    page = (DOCS / "getting-started.md").read_text()
    assert len(cmds) == 2 and all(c in page for c in cmds)


def test_cli_page_documents_every_command():
    from certnet.cli import app

    page = (DOCS / "cli.md").read_text()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert [n for n in names if f"certnet {n}" not in page] == []
