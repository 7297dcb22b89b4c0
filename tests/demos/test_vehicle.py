"""Vehicle demo: the quick run end to end, the python-control wiring, the gain lower bound."""

import json

import control
import numpy as np
import pytest
import torch

import certnet as cn
from certnet.demos import vehicle
from certnet.verify import Certificate


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("vehicle")
    return vehicle.run(out, quick=True), out


def test_quick_run_writes_every_artifact_and_sound_certificates(quick):
    res, out = quick
    for f in (
        "controller.safetensors",
        "certificate.json",
        "closed_loop_stability.json",
        "closed_loop_l2_gain.json",
        "report.md",
        "metrics.json",
        "trajectories.png",
        "phase_portrait.png",
        "closed_loop_gain.png",
        "lipschitz_bounds.png",
        "training_curve.png",
    ):
        assert (out / f).is_file(), f
        assert out / f in res.files, f
    net = cn.load(out / "controller.safetensors")
    cert = Certificate.load(out / "certificate.json")
    assert cert.to_json() == res.certificate.to_json()
    assert cert.check(net) <= cert.value
    m = res.metrics
    assert m["sampled_lipschitz_lower_bound"] <= cert.value <= m["budget_by_construction"]
    # the closed-loop certificates re-prove themselves on the stored weights
    stab = Certificate.load(out / "closed_loop_stability.json")
    l2 = Certificate.load(out / "closed_loop_l2_gain.json")
    plant = cn.plants.VehicleLateral()
    assert stab.kind == "stability" and stab.certified and stab.check(net, plant=plant) < 1
    assert l2.kind == "l2-gain" and l2.certified and l2.check(net, plant=plant) <= l2.value
    # sound: no admissible disturbance realises more than the certified gain
    assert m["simulated_l2_gain_lower_bound"] <= l2.value == m["certified_l2_gain"]
    assert m["lqr_linear_l2_gain"] <= m["lqr_certified_l2_gain"]
    # both controllers complete the lane change and reject the gust
    assert m["nn_final_lateral_error_m"] < 0.01 and m["lqr_final_lateral_error_m"] < 0.01
    assert json.loads((out / "metrics.json").read_text())["certified_l2_gain"] == l2.value
    report = res.report_path.read_text()
    assert "## Closed-loop certificates" in report and "| LQR | ℓ2 gain γ |" in report


def test_feedback_system_is_the_twin_loop_shifted_by_the_reference():
    plant = cn.plants.VehicleLateral()
    expert = cn.experts.lqr(plant)
    sys = vehicle.feedback_system(plant, expert)
    assert sys.input_labels == ["e_ref", "e_dot_ref", "e_psi_ref", "e_psi_dot_ref", "d"]
    steps, c, dist = 60, 0.4, 0.003
    t = np.arange(steps + 1) * plant.dt
    U = np.zeros((5, t.size))
    U[0], U[4] = c, dist
    resp = control.input_output_response(sys, t, U, X0=np.zeros(4))
    # the lateral error has no restoring term, so x − r follows the twin from −r
    x = torch.tensor([[-c, 0.0, 0.0, 0.0]], dtype=torch.float64)
    for k in range(steps + 1):
        np.testing.assert_allclose(resp.outputs[:4, k], x[0].numpy() + [c, 0, 0, 0], atol=1e-12)
        u = torch.as_tensor(expert(x.numpy()), dtype=torch.float64).reshape(1, 1)
        np.testing.assert_allclose(resp.outputs[4, k], float(u) + dist, atol=1e-12)
        x = plant.step(x, u + dist)


def test_simulated_gain_is_below_the_certified_gain_and_near_the_linear_one():
    plant = cn.plants.VehicleLateral()
    expert = cn.experts.lqr(plant)
    lqr_net = vehicle.linear_controller(expert)
    cert = cn.verify.l2_gain(plant, lqr_net, performance=vehicle.PERFORMANCE, energy=vehicle.ENERGY)
    freqs = np.array([0.0, 1.0, 10.0])
    sampled = vehicle.simulated_gain(plant, lqr_net, freqs, steps=1500)
    assert cert.certified and np.all(sampled <= cert.value)
    # small disturbances never saturate: the constant one comes close to the certified gain
    assert sampled[0] > 0.85 * cert.value
    assert sampled[2] < 0.5 * sampled[0]
