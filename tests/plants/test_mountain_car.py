import gymnasium as gym
import numpy as np
import pytest
import torch

import certnet as cn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_gymnasium_step_for_step(seed):
    plant = cn.plants.MountainCar()
    env = gym.make("MountainCarContinuous-v0").unwrapped
    env.reset(seed=seed)
    x = torch.tensor(np.asarray(env.state, dtype=np.float64))[None]
    rng = np.random.default_rng(seed)
    for _ in range(200):
        a = rng.uniform(-1.5, 1.5, size=(1,)).astype(np.float32)
        _, r, term, _, _ = env.step(a)
        u = torch.from_numpy(a)[None]
        assert abs(float(plant.reward(x, u)[0]) - r) <= 1e-6
        x = plant.step(x, u)
        np.testing.assert_allclose(x[0].numpy(), env.state, atol=1e-6, rtol=0)
        assert bool(plant.terminated(x)[0]) == term
        if term:
            break


def test_left_wall_stops_the_car():
    p = cn.plants.MountainCar()
    x = torch.tensor([[-1.19, -0.05]], dtype=torch.float64)
    x1 = p.step(x, torch.tensor([[-1.0]], dtype=torch.float64))
    assert x1[0, 0] == -1.2 and x1[0, 1] == 0.0


def test_goal_reward_and_saturations():
    p = cn.plants.MountainCar()
    x = torch.tensor([[0.44, 0.05]], dtype=torch.float64)
    u = torch.tensor([[2.0]], dtype=torch.float64)
    assert float(p.reward(x, u)[0]) == pytest.approx(100 - 0.4)
    assert {s.name for s in p.saturations} == {"force_limit", "speed_limit", "walls"}
