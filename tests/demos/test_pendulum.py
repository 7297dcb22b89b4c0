import math

import numpy as np
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


def test_state_feedback_form_is_the_network_with_a_linearised_observation(balancing_net):
    stack = extract_layers(balancing_net)
    theta = 0.02
    sf = pendulum._state_feedback(stack, theta)
    plant = cn.plants.Pendulum()

    def net_on_state(x):
        return stack.forward(plant.observe(torch.tensor(x)).numpy())

    x_eq = np.array([[theta, 0.0]])
    assert sf.forward(x_eq) == pytest.approx(net_on_state(x_eq), abs=1e-12)
    # θ̇ enters the observation linearly: exact along it; θ: second-order agreement
    x = np.array([[theta, 0.7]])
    assert sf.forward(x) == pytest.approx(net_on_state(x), abs=1e-12)
    for d in (1e-2, 1e-3):
        x = np.array([[theta + d, 0.1]])
        assert abs(sf.forward(x) - net_on_state(x)).max() < 20 * d**2


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


def test_local_closed_loop_certificate_of_a_balancing_controller(balancing_net, tmp_path):
    section = pendulum._loop_section(tmp_path, balancing_net, True, 0)
    assert section.metrics["closed_loop_certified"] is True
    assert section.metrics["closed_loop_method"] == "sector-linearization"
    cert = Certificate.load(tmp_path / "closed_loop_certificate.json")
    assert cert.check() <= cert.value < 1
    assert section.metrics["closed_loop_sampled_converged"] == 1.0
    (region,) = section.regions
    assert region.center == pytest.approx(cert.array("x_eq"))
    assert "**local**" in section.text and "**linearised**" in section.text
    assert math.isfinite(section.metrics["closed_loop_roa_volume"])
