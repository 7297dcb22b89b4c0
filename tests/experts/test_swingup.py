import numpy as np
import pytest
import torch

import certnet as cn


def test_swing_up_solves_gymnasium_pendulum():
    pi = cn.experts.swing_up(cn.plants.Pendulum())
    res = cn.export.evaluate(pi, "Pendulum-v1", episodes=6, seed=0)
    assert res.success_rate == 1.0
    assert res.mean_return > -200  # "solved" per research: ≥ −200; best RL ≈ −150


def test_swing_up_from_hanging_rest_in_torch():
    plant = cn.plants.InvertedPendulum(max_torque=0.3)
    pi = cn.experts.swing_up(plant)
    x0 = torch.tensor([[np.pi, 0.0], [np.pi - 0.2, 0.0]], dtype=torch.float64)
    ro = plant.rollout(pi, x0, 600)
    assert plant.is_settled(ro.states[:, -1]).all()
    assert ro.actions.abs().max() <= 0.3 + 1e-12


def test_energy_is_zero_upright_and_pumping_raises_it():
    plant = cn.plants.Pendulum()
    pi = cn.experts.swing_up(plant)
    x = torch.tensor([[0.0, 0.0], [np.pi, 0.0]], dtype=torch.float64)
    e = pi.energy(x)
    assert float(e[0]) == 0.0 and float(e[1]) == pytest.approx(-30.0)
    x = torch.tensor([[np.pi - 0.1, 0.5]], dtype=torch.float64)
    x1 = plant.step(x, pi(plant.observe(x)))
    assert pi.energy(x1) > pi.energy(x)


def test_errors():
    with pytest.raises(TypeError, match="swing_up supports Pendulum, InvertedPendulum and Cart"):
        cn.experts.swing_up(cn.plants.MountainCar())
    with pytest.raises(ValueError, match="gain must be > 0"):
        cn.experts.swing_up(cn.plants.CartPole(), gain=-1)
    with pytest.raises(ValueError, match="gain must be > 0"):
        cn.experts.swing_up(cn.plants.Pendulum(), gain=0)
    with pytest.raises(ValueError, match="the plant has no torque limit"):
        cn.experts.swing_up(cn.plants.InvertedPendulum())
    with pytest.raises(ValueError, match=r"catch_angle must be in \(0, π\] rad, got -1"):
        cn.experts.swing_up(cn.plants.Pendulum(), catch_angle=-1)


def test_pendulum_catch_by_angle_or_by_cost_to_go():
    plant = cn.plants.Pendulum()
    by_angle = cn.experts.swing_up(plant)
    assert by_angle.catch_angle == 1.0 and by_angle.gain == pytest.approx(2 / 15)
    by_cost = cn.experts.swing_up(plant, catch=1.24)
    assert by_cost.catch_angle is None
    # 0.9 rad from upright, moving fast away: caught by angle, pumped by cost-to-go
    x = torch.tensor([[0.9, 3.0]], dtype=torch.float64)
    obs = plant.observe(x)
    assert torch.equal(by_angle(obs), by_angle.lqr(obs))
    assert not torch.equal(by_cost(obs), by_cost.lqr(obs))


def test_cartpole_swing_up_from_hanging():
    inf = float("inf")
    plant = cn.plants.CartPole(x_threshold=inf, theta_threshold=inf)
    pi = cn.experts.swing_up(plant)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(8, 4, generator=g, dtype=torch.float64) - 0.5) * torch.tensor(
        [1.0, 0.4, 0.6, 0.6], dtype=torch.float64
    )
    x0[:, 2] += np.pi
    ro = plant.rollout(pi, x0, 1000)
    assert plant.is_settled(ro.states[:, -1]).all()
    assert ro.states[:, :, 0].abs().max() < 3.0
    assert float(pi.energy(torch.zeros(1, 4, dtype=torch.float64))[0]) == 0.0
