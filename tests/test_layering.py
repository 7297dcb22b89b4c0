"""Imports flow one way: geometry → nn → optim → train; verify never imports optim or train;
plants import no learning code; nothing imports the CLI."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "certnet"

FORBIDDEN = {
    "geometry": {"nn", "optim", "train", "verify", "plants", "experts", "export", "cli"},
    "nn": {"optim", "train", "verify", "plants", "experts", "export", "cli"},
    "optim": {"train", "verify", "plants", "experts", "export", "cli"},
    "verify": {"optim", "train", "experts", "export", "cli"},
    "plants": {"nn", "optim", "train", "verify", "experts", "export", "cli"},
    "experts": {"optim", "train", "export", "cli"},
    "export": {"optim", "train", "cli"},
    "train": {"cli"},
    "io": {"optim", "train", "plants", "experts", "export", "cli"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("certnet."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "certnet":
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("certnet."):
                    names.add(a.name.split(".")[1])
    return names


FILES = [p for p in PKG.rglob("*.py")]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_import_back_edges(path):
    rel = path.relative_to(PKG)
    top = rel.parts[0].removesuffix(".py")
    bad = _imports(path) & FORBIDDEN.get(top, set())
    assert not bad, f"{rel} imports {sorted(bad)}, against the layering rule"
