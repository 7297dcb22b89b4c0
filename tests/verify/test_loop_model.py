"""The closed loop read from real code: plants of every kind, observations, the proved
equilibrium, and enclosures that contain the true map."""

import control
import numpy as np
import pytest
import torch

import certnet as cn
from certnet.errors import CertificateError, EquilibriumError
from certnet.verify.loop_model import ClosedLoop
from tests.verify.conftest import dlqr_gain, feedback_net

PEND = cn.plants.InvertedPendulum()


def _contains(loop, lo, hi, samples=16, seed=0):
    """G and ∂G/∂x at sampled points lie in the enclosure of each box."""
    rng = np.random.default_rng(seed)
    n = lo.shape[1]
    centre, box = loop.enclose(lo, hi, np.zeros(n), np.eye(n))
    t = np.clip(lo[:, None] + (hi - lo)[:, None] * rng.uniform(0, 1, (len(lo), samples, n)),
                lo[:, None], hi[:, None])
    with torch.no_grad():
        g = loop.step(torch.as_tensor(t.reshape(-1, n))).numpy().reshape(len(lo), samples, n)
        gc = loop.step(torch.as_tensor(0.5 * lo + 0.5 * hi)).numpy()
    return (np.all(box.lo[:, None] <= g) and np.all(g <= box.hi[:, None])
            and np.all(centre.lo <= gc) and np.all(gc <= centre.hi))


def test_a_discrete_plant_loop_is_enclosed_with_its_jacobian():
    net = feedback_net(dlqr_gain(PEND), width=8)
    loop = ClosedLoop(cn.plants.InvertedPendulum(max_torque=0.5), net)
    lo = np.random.default_rng(1).uniform(-2, 2, (64, 2))
    assert _contains(loop, lo, lo + 0.05)
    J = loop.jacobian(np.array([0.3, -0.2]))
    x = torch.tensor([0.3, -0.2], dtype=torch.float64)
    ref = torch.autograd.functional.jacobian(lambda v: loop.step(v[None])[0], x).numpy()
    np.testing.assert_allclose(J, ref, rtol=1e-12, atol=1e-12)


def test_the_exact_zoh_flow_of_a_continuous_nlsys_is_enclosed():
    def f(t, x, u, params):
        return np.array([x[1], 9.81 * np.sin(x[0]) - 0.1 * x[1] + u[0]])

    sys = control.nlsys(f, None, states=2, inputs=1)
    net = feedback_net(np.array([[30.0, 8.0]]), width=8)
    loop = ClosedLoop(sys, net, dt=0.05)
    loop.plant.substeps = 400  # the reference: RK4 far below the enclosure's width
    lo = np.random.default_rng(2).uniform(-1, 1, (32, 2))
    assert loop.continuous and _contains(loop, lo, lo + 0.02)


def test_observation_feedback_reads_the_plant_observation():
    plant = cn.plants.Pendulum()
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    loop = ClosedLoop(plant, net.double())
    x = torch.tensor([[0.2, -1.0]], dtype=torch.float64)
    with torch.no_grad():
        want = net(plant.observe(x)).clamp(-2, 2)
        assert torch.allclose(loop.control(x), want)
    state = ClosedLoop(PEND, feedback_net(np.ones((1, 2))), observation="state")
    assert state.observation(x) is x
    with pytest.raises(ValueError, match="observes 3"):
        ClosedLoop(plant, feedback_net(np.ones((1, 4))))


def test_the_equilibrium_is_proved_near_the_guess_and_refused_far_from_it():
    net = feedback_net(dlqr_gain(PEND), width=8, bias=True)
    with torch.no_grad():
        net[0].bias.fill_(1e-4)  # a small offset: x* moves a little
    loop = ClosedLoop(PEND, net)
    x, lo, hi = loop.equilibrium()
    assert abs(x[0]) > 1e-8 and np.all(lo <= x) and np.all(x <= hi)
    with torch.no_grad():
        g = loop.step(torch.as_tensor(x)[None])[0].numpy()
    np.testing.assert_allclose(g, x, atol=1e-12)
    loop.prove_fixed_point(x, lo, hi)
    with pytest.raises(CertificateError, match="does not prove a fixed point"):
        loop.prove_fixed_point(x, lo + 1.0, hi + 1.0)
    with pytest.raises(EquilibriumError, match="not a closed-loop equilibrium"):
        loop.equilibrium([0.5, 0.0])
    with pytest.raises(ValueError, match="x_eq must be 2 finite numbers"):
        loop.equilibrium([0.0])


def test_parameter_ranges_widen_the_enclosure_to_every_plant_in_the_set():
    net = feedback_net(dlqr_gain(PEND), width=8)
    loop = ClosedLoop(PEND, net, parameters={"mass": (0.12, 0.18)})
    lo = np.random.default_rng(3).uniform(-1, 1, (16, 2))
    hi = lo + 0.01
    for mass in (0.12, 0.15, 0.18):
        nominal = ClosedLoop(cn.plants.InvertedPendulum(mass=mass), net)
        _, box = loop.enclose(lo, hi, np.zeros(2), np.eye(2))
        with torch.no_grad():
            g = nominal.step(torch.as_tensor(lo)).numpy()
        assert np.all(box.lo <= g) and np.all(g <= box.hi)
