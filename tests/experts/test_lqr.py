import numpy as np
import pytest
import torch

import certnet as cn


def test_pendulum_dlqr_gain():
    pi = cn.experts.lqr(cn.plants.Pendulum())
    np.testing.assert_allclose(pi.K, [[19.69, 5.26]], atol=0.01)
    assert np.all(np.abs(pi.E) < 1)


def test_dlqr_stabilises_pendulum_where_torque_allows():
    plant = cn.plants.Pendulum()
    pi = cn.experts.lqr(plant)
    th = torch.linspace(-0.35, 0.35, 15, dtype=torch.float64)
    x0 = torch.stack([th, torch.zeros_like(th)], 1)
    ro = plant.rollout(pi, x0, 200)
    assert plant.is_settled(ro.states[:, -1]).all()
    assert ro.actions.abs().max() <= 2.0


def test_dlqr_cannot_hold_beyond_torque_limit():
    plant = cn.plants.Pendulum()
    ro = plant.rollout(cn.experts.lqr(plant), torch.tensor([[1.0, 0.0]], dtype=torch.float64), 100)
    assert not plant.is_settled(ro.states[:, -1]).any()


@pytest.mark.parametrize(
    "make", [cn.plants.InvertedPendulum, cn.plants.CartPole, cn.plants.VehicleLateral]
)
def test_lqr_stabilises_other_plants(make):
    plant = make()
    x0 = torch.as_tensor(plant.reset_low * 0.5)[None]
    ro = plant.rollout(cn.experts.lqr(plant), x0, 400)
    assert plant.is_settled(ro.states[:, -1]).all()


def test_continuous_design_and_numpy_calls():
    plant = cn.plants.Pendulum()
    pi = cn.experts.lqr(plant, continuous=True)
    np.testing.assert_allclose(pi.K, [[37.0, 11.2]], atol=0.1)
    a = pi(np.array([np.cos(0.1), np.sin(0.1), 0.0], dtype=np.float32))
    assert a.shape == (1,) and a.dtype == np.float32
    assert pi(np.zeros((4, 3)) + [1, 0, 0]).shape == (4, 1)


def test_wraps_angles():
    plant = cn.plants.Pendulum()
    pi = cn.experts.lqr(plant)
    x = torch.tensor([[0.1, 0.0], [0.1 + 2 * np.pi, 0.0]], dtype=torch.float64)
    err = pi.state_error(x)
    torch.testing.assert_close(err[0], err[1])


def test_errors():
    with pytest.raises(ValueError, match=r"Q must be \(2, 2\)"):
        cn.experts.lqr(cn.plants.Pendulum(), Q=np.eye(3))
    with pytest.raises(ValueError, match=r"observation must have shape \(3,\)"):
        cn.experts.lqr(cn.plants.Pendulum())(np.zeros(2))
    with pytest.raises(ValueError, match="observation contains NaN"):
        cn.experts.lqr(cn.plants.Pendulum())(np.array([np.nan, 0, 0]))
