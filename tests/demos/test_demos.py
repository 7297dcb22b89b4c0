import json

import pytest

import certnet as cn
from certnet import demos
from certnet.verify import Certificate


def test_unknown_demo_names_the_valid_ones(tmp_path):
    with pytest.raises(
        ValueError, match=r"unknown demo 'pendlum'; choose one of: pendulum, mountaincar"
    ):
        demos.run("pendlum", tmp_path)


@pytest.mark.parametrize("name", demos.NAMES)
def test_quick_demo_writes_every_artifact(name, tmp_path):
    res = demos.run(name, tmp_path / name, quick=True)
    out = tmp_path / name
    for f in (
        "controller.safetensors",
        "certificate.json",
        "report.md",
        "metrics.json",
        "trajectories.png",
        "phase_portrait.png",
        "lipschitz_bounds.png",
        "training_curve.png",
    ):
        assert (out / f).is_file(), f
    assert res.report_path == out / "report.md" and res.out == out
    net = cn.load(out / "controller.safetensors")
    meta = cn.read_metadata(out / "controller.safetensors")
    cert = Certificate.from_json(meta["certificate"])
    assert cert.to_json() == Certificate.load(out / "certificate.json").to_json()
    assert cert.to_json() == res.certificate.to_json()
    # the stored certificate re-proves itself on the stored weights, and is sound
    assert cert.check(net) <= cert.value
    assert res.metrics["sampled_lipschitz_lower_bound"] <= cert.value
    assert json.loads((out / "metrics.json").read_text())["certified_lipschitz"] == cert.value
    assert "| fast |" in res.report_path.read_text()
