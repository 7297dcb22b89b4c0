import control
import numpy as np
import pytest
import torch

import certnet as cn


def test_continuous_system_is_sampled_exactly():
    sys = control.ss([[0, 1], [-2, -0.5]], [[0], [1]], [[1, 0]], 0)
    p = cn.plants.LTI(sys, dt=0.1)
    d = control.c2d(sys, 0.1)
    np.testing.assert_allclose(p.Ad, d.A)
    assert p.integrator == "exact" and p.has_vector_field
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(p.step(x, torch.ones(1, 1, dtype=torch.float64))[0].numpy(),
                               d.A @ [1, 0] + d.B[:, 0])


def test_discrete_system_and_reward():
    p = cn.plants.LTI(control.ss([[1.1]], [[1.0]], [[1.0]], 0, 0.5), Q=[[2.0]], R=[[3.0]])
    assert not p.has_vector_field and p.dt == 0.5
    x, u = torch.tensor([[2.0]]), torch.tensor([[1.0]])
    assert float(p.reward(x, u)[0]) == pytest.approx(-(2 * 4 + 3))
    with pytest.raises(TypeError, match="discrete-time map"):
        p.vector_field(x, u)


def test_vehicle_lateral_model():
    p = cn.plants.VehicleLateral()
    assert p.state_names == ("e", "e_dot", "e_psi", "e_psi_dot")
    assert p.u_max[0] == pytest.approx(np.deg2rad(30))
    assert p.state_units[0] == "m"
    # open loop: one pole at 0 (double integrator in e) and stable lateral modes
    eig = np.linalg.eigvals(p.A)
    assert np.sum(np.abs(eig) < 1e-9) == 2 and np.all(eig.real < 1e-9)
    np.testing.assert_allclose(p.B[1, 0], 2 * 61595 / 1670)


def test_errors():
    with pytest.raises(TypeError, match="sys must be a control.StateSpace"):
        cn.plants.LTI(np.eye(2))
    with pytest.raises(ValueError, match="sys is continuous-time; pass the sampling period"):
        cn.plants.LTI(control.ss([[0.0]], [[1.0]], [[1.0]], 0))
    with pytest.raises(ValueError, match="unspecified sampling period"):
        cn.plants.LTI(control.ss([[0.0]], [[1.0]], [[1.0]], 0, True))
    with pytest.raises(ValueError, match="differs from the discrete system"):
        cn.plants.LTI(control.ss([[0.0]], [[1.0]], [[1.0]], 0, 0.1), dt=0.2)
    with pytest.raises(ValueError, match=r"Q must be \(1, 1\)"):
        cn.plants.LTI(control.ss([[0.0]], [[1.0]], [[1.0]], 0, 0.1), Q=np.eye(2))
    with pytest.raises(ValueError, match="u_min .* exceeds u_max"):
        cn.plants.LTI(control.ss([[0.0]], [[1.0]], [[1.0]], 0, 0.1), u_min=1, u_max=0)
    with pytest.raises(ValueError, match="speed must be > 0"):
        cn.plants.VehicleLateral(speed=0)
