"""The ``certnet`` command: every command on a tiny model or config, and its error paths."""

import importlib
import json
import re

import pytest
import torch
from typer.testing import CliRunner

import certnet as cn
from certnet.cli import app

runner = CliRunner()


def needs(module: str, name: str | None = None):
    """Skip while a dependency module (another developer's part) has not landed."""
    try:
        mod = importlib.import_module(f"certnet.{module}")
    except ModuleNotFoundError:
        pytest.skip(f"certnet.{module} not available yet")
    if name is not None and not hasattr(mod, name):
        pytest.skip(f"certnet.{module}.{name} not available yet")
    return mod


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def run_json(*args) -> dict:
    r = run(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def user_error(r, match: str) -> str:
    """Exit code 2, one line on stderr matching ``match``, no traceback."""
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


@pytest.fixture
def model(tmp_path):
    """A tiny pendulum-sized controller: observation (3) → torque (1)."""
    net = cn.nn.NormalizedMLP([3, 8, 8, 1], activation="tanh", lipschitz=4.0, seed=0)
    return cn.save(net, tmp_path / "ctrl.safetensors")


# ------------------------------------------------------------------------------ general
def test_version():
    r = run("version")
    assert r.exit_code == 0 and r.stdout.strip() == cn.__version__


def test_help_lists_every_command():
    r = run("--help")
    assert r.exit_code == 0
    for cmd in ("demo", "train", "verify", "simulate", "evaluate", "export", "info"):
        assert cmd in r.stdout


def test_info_reports_architecture_and_bound(model):
    out = run_json("info", model)
    assert out["widths"] == [3, 8, 8, 1]
    assert out["kind"] == "NormalizedMLP"
    assert out["by_construction_bound"] == pytest.approx(4.0)
    r = run("info", model)
    assert r.exit_code == 0 and "by-construction bound" in r.stdout


def test_info_of_a_sequential(tmp_path):
    seq = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    out = run_json("info", cn.save(seq, tmp_path / "s.safetensors"))
    assert out["kind"] == "Sequential" and out["activations"] == ["relu"]
    assert "by_construction_bound" not in out


def test_missing_model_file(tmp_path):
    user_error(run("info", tmp_path / "nope.safetensors"), r"no such model file: .*nope")


def test_not_a_model_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("hello")
    user_error(run("info", bad), r"is not a safetensors file")
