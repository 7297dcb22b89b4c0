"""Contract tests over every plant, and the errors of the checked API."""

import numpy as np
import pytest
import torch

import certnet as cn


def _states(plant, b=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo = torch.as_tensor(plant.reset_low)
    hi = torch.as_tensor(plant.reset_high)
    return lo + (hi - lo) * torch.rand(b, plant.n_states, generator=g, dtype=torch.float64)


def _inputs(plant, b=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    lo = np.where(np.isfinite(plant.u_min), plant.u_min, -1.0)
    hi = np.where(np.isfinite(plant.u_max), plant.u_max, 1.0)
    r = torch.rand(b, plant.n_inputs, generator=g, dtype=torch.float64)
    return torch.as_tensor(lo) + torch.as_tensor(hi - lo) * r


def test_shapes_and_dtype_follow_x(plant):
    x, u = _states(plant), _inputs(plant)
    assert plant.step(x, u).shape == x.shape
    assert plant.step(x.float(), u.float()).dtype == torch.float32
    assert plant.observe(x).shape == (7, plant.n_obs)
    assert plant.reward(x, u).shape == (7,)
    assert plant.terminated(x).shape == (7,)
    assert len(plant.state_units) == plant.n_states
    assert len(plant.input_units) == plant.n_inputs


def test_step_is_differentiable(plant):
    x = _states(plant).requires_grad_(True)
    u = (0.5 * _inputs(plant)).requires_grad_(True)
    plant.step(x, u).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(u.grad).all()
    assert x.grad.abs().sum() > 0


def test_state_from_obs_inverts_observe(plant):
    x = _states(plant)
    x = x.clone()
    for i in plant.angle_states:
        x[:, i] = cn.plants.wrap_angle(x[:, i])
    torch.testing.assert_close(plant.state_from_obs(plant.observe(x)), x)


def test_rollout_shapes_and_consistency(plant):
    x0 = _states(plant, b=3)
    u_const = _inputs(plant, b=3)
    ro = plant.rollout(lambda obs: u_const.clone(), x0, steps=5)
    assert ro.states.shape == (3, 6, plant.n_states)
    assert ro.actions.shape == (3, 5, plant.n_inputs)
    assert ro.rewards.shape == (3, 5) and ro.terminated.shape == (3, 5)
    torch.testing.assert_close(ro.states[:, 1], plant.step(x0, u_const))


def test_saturations_are_listed(plant):
    for s in plant.saturations:
        assert s.low <= s.high and s.description
    names = [s.signal for s in plant.saturations]
    if np.isfinite(plant.u_max).all():
        assert set(plant.input_names) <= set(names)


def test_pendulum_lists_gymnasium_speed_clip():
    sats = {s.name: s for s in cn.plants.Pendulum().saturations}
    assert sats["speed_limit"].high == 8.0 and sats["torque_limit"].high == 2.0


def test_out_of_range_inputs_clipped_like_gymnasium():
    p = cn.plants.Pendulum()
    x = torch.tensor([[0.3, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(p.step(x, torch.tensor([[50.0]], dtype=torch.float64)),
                               p.step(x, torch.tensor([[2.0]], dtype=torch.float64)))


def test_refusing_plant_raises_on_out_of_range_inputs():
    p = cn.plants.Pendulum(input_saturation="refuse")
    x = torch.zeros(2, 2, dtype=torch.float64)
    p.step(x, torch.full((2, 1), 2.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="refuses inputs outside"):
        p.step(x, torch.full((2, 1), 2.5, dtype=torch.float64))


@pytest.mark.parametrize(
    "x, u, exc, match",
    [
        (np.zeros((1, 2)), torch.zeros(1, 1), TypeError, "x must be a torch.Tensor"),
        (torch.zeros(1, 2, dtype=torch.int64), torch.zeros(1, 1), TypeError, "floating-point"),
        (torch.zeros(2), torch.zeros(1, 1), ValueError, r"x must have shape \(B, 2\)"),
        (torch.zeros(1, 3), torch.zeros(1, 1), ValueError, r"x must have shape \(B, 2\)"),
        (torch.tensor([[float("nan"), 0.0]]), torch.zeros(1, 1), ValueError, "NaN or inf"),
        (torch.zeros(1, 2), [[0.0]], TypeError, "u must be a torch.Tensor"),
        (torch.zeros(1, 2), torch.zeros(2, 1), ValueError, r"u must have shape \(1, 1\)"),
        (torch.zeros(1, 2), torch.zeros(1, 1, dtype=torch.int64), TypeError, "u must be a float"),
        (torch.zeros(1, 2), torch.tensor([[float("inf")]]), ValueError, "u contains NaN"),
    ],
)
def test_step_errors(x, u, exc, match):
    with pytest.raises(exc, match=match):
        cn.plants.Pendulum().step(x, u)


def test_rollout_errors():
    p = cn.plants.Pendulum()
    x0 = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        p.rollout(lambda o: torch.zeros(2, 1), x0, 0)
    with pytest.raises(ValueError, match=r"policy must return a tensor of shape \(2, 1\)"):
        p.rollout(lambda o: torch.zeros(2), x0, 3)
    with pytest.raises(ValueError, match=r"policy must return a tensor of shape \(2, 1\)"):
        p.rollout(lambda o: np.zeros((2, 1)), x0, 3)


def test_constructor_errors():
    with pytest.raises(ValueError, match="input_saturation must be 'clip' or 'refuse'"):
        cn.plants.Pendulum(input_saturation="wrap")
    with pytest.raises(ValueError, match="g must be a positive finite number"):
        cn.plants.Pendulum(g=-1)
    with pytest.raises(ValueError, match="friction must be"):
        cn.plants.InvertedPendulum(friction=-0.1)
    with pytest.raises(ValueError, match="max_torque must be > 0"):
        cn.plants.InvertedPendulum(max_torque=0)
    with pytest.raises(ValueError, match="integrator must be 'euler' or 'rk4'"):
        cn.plants.InvertedPendulum(integrator="midpoint")
    with pytest.raises(ValueError, match="mass must be a positive"):
        cn.plants.InvertedPendulum(mass=0)
    with pytest.raises(ValueError, match="masspole must be > 0"):
        cn.plants.CartPole(masspole=0)


def test_discrete_map_has_no_vector_field():
    p = cn.plants.MountainCar()
    assert not p.has_vector_field
    with pytest.raises(TypeError, match="discrete-time map with no continuous-time vector field"):
        p.vector_field(torch.zeros(1, 2), torch.zeros(1, 1))


def test_is_settled_wraps_angles():
    p = cn.plants.Pendulum()
    x = torch.tensor([[2 * np.pi + 0.01, 0.0], [0.5, 0.0]], dtype=torch.float64)
    assert p.is_settled(x).tolist() == [True, False]
