import math

import pytest
import torch

import certnet as cn
from certnet.demos import pendulum
from certnet.nn.extract import extract_layers
from certnet.verify import Certificate


@pytest.fixture(scope="module")
def balancing_net():
    """A small network fitted to the pendulum's LQR near upright (balances, no swing-up)."""
    plant = cn.plants.Pendulum()
    net = cn.nn.NormalizedMLP([3, 16, 16, 1], lipschitz=30.0, dtype=torch.float64, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(500, 2, generator=gen, dtype=torch.float64) - 0.5) * torch.tensor([1.0, 2.0])
    obs = plant.observe(x)
    cn.optim.fit(net, obs, cn.experts.lqr(plant)(obs), epochs=60, progress=False)
    return net


def test_equilibrium_holds_the_pendulum_at_rest(balancing_net):
    plant = cn.plants.Pendulum()
    stack = extract_layers(balancing_net)
    theta = pendulum._equilibrium(stack, plant)
    assert theta is not None and abs(theta) < 0.1
    x = torch.tensor([[theta, 0.0]], dtype=torch.float64)
    u = torch.from_numpy(stack.forward(plant.observe(x).numpy()))
    assert plant.step(x, u).sub(x).abs().max() < 1e-13
    # a network that pushes the wrong way has no such equilibrium
    flipped = cn.nn.NormalizedMLP([3, 1], lipschitz=30.0, dtype=torch.float64)
    with torch.no_grad():
        flipped.linears[0].point.copy_(torch.tensor([[0.0, 1.0, 0.0]]))
    flipped.set_budget(30.0)
    assert pendulum._equilibrium(extract_layers(flipped), plant) is None


def test_closed_loop_certificate_of_a_balancing_controller_is_about_the_real_loop(
    balancing_net, tmp_path
):
    section = pendulum._loop_section(tmp_path, balancing_net, True, 0)
    assert section.metrics["closed_loop_certified"] is True
    assert section.metrics["closed_loop_method"] == "lyapunov-bnb"
    cert = Certificate.load(tmp_path / "closed_loop_certificate.json")
    assert cert.check(balancing_net, plant=cn.plants.Pendulum()) <= cert.value < 1
    assert section.metrics["closed_loop_sampled_converged"] == 1.0
    (region,) = section.regions
    assert region.center == pytest.approx(cert.array("x_eq"))
    assert "**real loop**" in section.text and "nothing is linearised" in section.text
    assert math.isfinite(section.metrics["closed_loop_roa_volume"])
    assert (tmp_path / "closed_loop_region.png").is_file()
    # the region is drawn over a simulated basin that it covers part of
    assert 0 < section.metrics["closed_loop_basin_coverage"] <= 1
