import gymnasium as gym
import numpy as np
import pytest
import torch

import certnet as cn


@pytest.fixture
def net():
    return cn.nn.NormalizedMLP([3, 16, 1], lipschitz=50.0, seed=0)


def test_policy_scales_clips_and_keeps_types(net):
    pol = cn.export.to_policy(net, plant=cn.plants.Pendulum(), obs_scale=2.0, action_scale=10.0)
    obs = np.array([1.0, 0.0, 3.0], dtype=np.float32)
    a = pol(obs)
    assert a.shape == (1,) and a.dtype == np.float32 and abs(a[0]) <= 2.0
    with torch.no_grad():
        raw = 10.0 * net(torch.tensor(obs)[None] * 2.0)[0]
    np.testing.assert_allclose(a, np.clip(raw.numpy(), -2, 2), atol=1e-6)
    batch = pol(np.stack([obs] * 5))
    assert batch.shape == (5, 1)
    x = torch.tensor(obs)[None].requires_grad_(True)
    pol(x).sum().backward()
    assert x.grad is not None
    assert pol.predict(obs)[1] is None


def test_limits_from_env_and_errors(net):
    env = gym.make("Pendulum-v1")
    pol = cn.export.to_policy(net, env=env)
    np.testing.assert_allclose(pol.high, [2.0])
    with pytest.raises(ValueError, match="give both low and high"):
        cn.export.to_policy(net, low=-1)
    with pytest.raises(ValueError, match="action low .* exceeds high"):
        cn.export.to_policy(net, low=1, high=-1)
    with pytest.raises(TypeError, match="cannot read a"):
        cn.export.to_policy(torch.nn.GRU(3, 2))


def test_evaluate_lqr_on_twin_and_original():
    plant = cn.plants.Pendulum()
    pi = cn.experts.lqr(plant)
    ours = cn.export.evaluate(pi, "certnet/Pendulum-v1", episodes=4, seed=0)
    theirs = cn.export.evaluate(pi, "Pendulum-v1", episodes=4, seed=0)
    np.testing.assert_allclose(ours.returns, theirs.returns, atol=1e-4)
    np.testing.assert_array_equal(ours.success, theirs.success)
    assert ours.lengths.tolist() == [200] * 4
    ok = ours.success == 1
    assert np.all(np.isfinite(ours.settling_time[ok])) and np.all(ours.settling_time[ok] >= 0)
    assert "episodes" in ours.summary()


def test_evaluate_goal_plant_and_unknown_plant():
    push = lambda obs: np.array([1.0 if obs[1] >= 0 else -1.0], dtype=np.float32)  # noqa: E731
    res = cn.export.evaluate(push, "MountainCarContinuous-v0", episodes=2, seed=0)
    assert res.success.tolist() == [1.0, 1.0] and res.mean_return > 80
    assert np.all(res.settling_time == res.lengths * 1.0)
    res = cn.export.evaluate(lambda o: 0, gym.make("CartPole-v1"), episodes=2)
    assert np.isnan(res.success).all() and np.isnan(res.success_rate)
    assert res.lengths.min() >= 1


def test_evaluate_errors():
    pi = cn.experts.lqr(cn.plants.Pendulum())
    with pytest.raises(ValueError, match="unknown environment id 'Pendulum-v9'"):
        cn.export.evaluate(pi, "Pendulum-v9")
    with pytest.raises(ValueError, match="episodes must be a positive integer"):
        cn.export.evaluate(pi, "Pendulum-v1", episodes=0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        cn.export.evaluate(pi, "Pendulum-v1", seed=-1)
    with pytest.raises(TypeError, match="env must be a gymnasium Env"):
        cn.export.evaluate(pi, 3)
