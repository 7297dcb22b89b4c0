import json

import pytest

import certnet as cn
from certnet import demos
from certnet.demos.loop import closed_loop_section
from certnet.verify import Certificate

_RUNS: dict = {}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Each demo's quick run, once per test module."""

    def run(name):
        if name not in _RUNS:
            out = tmp_path_factory.mktemp(name)
            _RUNS[name] = demos.run(name, out, quick=True)
        return _RUNS[name]

    yield run
    _RUNS.clear()


def test_unknown_demo_names_the_valid_ones(tmp_path):
    with pytest.raises(
        ValueError, match=f"unknown demo 'pendlum'; choose one of: {', '.join(demos.NAMES)}"
    ):
        demos.run("pendlum", tmp_path)


@pytest.mark.parametrize("name", demos.NAMES)
def test_quick_demo_writes_every_artifact(name, quick_run):
    res = quick_run(name)
    out = res.out
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
    assert res.report_path == out / "report.md"
    assert all(f.is_file() for f in res.files)
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


def test_cartpole_closed_loop_certificate_re_proves_on_the_saved_controller(quick_run):
    res = quick_run("cartpole")
    net = cn.load(res.out / "controller.safetensors")
    assert res.metrics["closed_loop_certified"] is True
    cert = Certificate.load(res.out / "closed_loop_certificate.json")
    assert cert.kind == "stability" and cert.method == "contraction-sdp"
    assert cert.check(net, plant=cn.plants.CartPole()) <= cert.value < 1
    assert cert.value == res.metrics["closed_loop_rho"]
    # the deployed controller, started in the region and on its boundary, reaches x*
    assert res.metrics["closed_loop_sampled_converged"] == 1.0
    text = res.report_path.read_text()
    assert "## Closed-loop certificate (the real plant)" in text and "**real loop**" in text
    assert "| closed_loop_rho | 0.99" in text  # never rounded up to 1
    assert res.metrics["success_rate"] == 1.0 and res.metrics["box_success_rate"] > 0.9


def test_closed_loop_section_reports_why_when_nothing_is_certified(tmp_path):
    plant = cn.plants.CartPole()
    net = cn.nn.NormalizedMLP([4, 4, 1], bias=False, lipschitz=1.0, seed=0)
    section = closed_loop_section(
        plant, net, tmp_path, meaning="M.", basin_box=(-0.5, 0.5, -1.0, 1.0), plane=(2, 3),
        quick=True,
    )
    assert section.metrics["closed_loop_certified"] is False
    assert section.text.startswith(
        "## Closed-loop certificate (the real plant)\n\nNot certified: "
    )
    assert "spectral radius" in section.text
    assert section.text.endswith("M.") and not section.regions and not section.files
    assert not (tmp_path / "closed_loop_certificate.json").exists()


def test_demo_configs_train_with_mm_on_the_full_data_set_and_adam_on_minibatches():
    from certnet.demos import cartpole, mountaincar, pendulum

    for module in (pendulum, cartpole, mountaincar):
        mm = module.config()
        assert (mm.optimizer, mm.batch_size, mm.epochs) == ("mm", None, 100)
        adam = module.config(optimizer="adam")
        assert (adam.optimizer, adam.lr, adam.batch_size, adam.epochs) == ("adam", 3e-3, 2048, 200)
        assert module.config(optimizer="adam", lr=1e-3).lr == 1e-3  # overrides win
        quick = module.config(True, 5)
        assert quick.hidden == (16, 16) and quick.iterations == 2 and quick.seed == 5
    with pytest.raises(ValueError, match="optimizer must be one of"):
        pendulum.config(optimizer="sgd")
