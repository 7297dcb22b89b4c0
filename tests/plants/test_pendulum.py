"""Pendulum is an exact twin of gymnasium Pendulum-v1; InvertedPendulum follows Yin et al."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import certnet as cn


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("action_dtype", [np.float32, np.float64])
def test_pendulum_matches_gymnasium_step_for_step(seed, action_dtype):
    plant = cn.plants.Pendulum()
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=seed)
    x = torch.tensor(np.asarray(env.state, dtype=np.float64))[None]
    rng = np.random.default_rng(seed)
    for _ in range(200):
        a = rng.uniform(-3, 3, size=(1,)).astype(action_dtype)  # outside ±2 too: clipped
        _, r, *_ = env.step(a)
        u = torch.from_numpy(a)[None]
        assert abs(float(plant.reward(x, u)[0]) - r) <= 1e-6
        x = plant.step(x, u)
        np.testing.assert_allclose(x[0].numpy(), env.state, atol=1e-6, rtol=0)


def test_pendulum_g_parameter_matches_gymnasium():
    plant = cn.plants.Pendulum(g=9.81)
    env = gym.make("Pendulum-v1", g=9.81).unwrapped
    env.reset(seed=4)
    x = torch.tensor(np.asarray(env.state))[None]
    for a in np.linspace(-2, 2, 50):
        env.step(np.array([a]))
        x = plant.step(x, torch.tensor([[a]], dtype=torch.float64))
    np.testing.assert_allclose(x[0].numpy(), env.state, atol=1e-9)


def test_inverted_pendulum_equations():
    p = cn.plants.InvertedPendulum()
    x = torch.tensor([[0.4, -0.3]], dtype=torch.float64)
    u = torch.tensor([[0.2]], dtype=torch.float64)
    g, m, l, mu, dt = 10.0, 0.15, 0.5, 0.05, 0.02
    acc = g / l * np.sin(0.4) - mu / (m * l**2) * (-0.3) + 0.2 / (m * l**2)
    expected = [0.4 + dt * (-0.3), -0.3 + dt * acc]
    np.testing.assert_allclose(p.step(x, u)[0].numpy(), expected, rtol=1e-14)


def test_inverted_pendulum_rk4_is_closer_to_fine_euler():
    x = torch.tensor([[0.8, 0.5]], dtype=torch.float64)
    u = torch.tensor([[0.1]], dtype=torch.float64)
    fine = cn.plants.InvertedPendulum(dt=0.02 / 1000)
    xf = x
    for _ in range(1000):
        xf = fine.step(xf, u)
    e_euler = (cn.plants.InvertedPendulum().step(x, u) - xf).abs().max()
    e_rk4 = (cn.plants.InvertedPendulum(integrator="rk4").step(x, u) - xf).abs().max()
    assert e_rk4 < e_euler / 100
