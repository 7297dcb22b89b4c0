import numpy as np
import pytest
import torch

import certnet as cn
from certnet.errors import SolverError


def test_mpc_respects_limits_and_stabilises():
    plant = cn.plants.Pendulum()
    pi = cn.experts.mpc(plant, horizon=15)
    x0 = torch.tensor([[0.35, 0.0], [-0.3, 0.5]], dtype=torch.float64)
    ro = plant.rollout(pi, x0, 60)
    assert plant.is_settled(ro.states[:, -1]).all()
    assert ro.actions.abs().max() <= 2.0
    assert pi.last_status == "optimal" and pi.solver == "OSQP"


def test_mpc_matches_lqr_when_constraints_inactive():
    plant = cn.plants.VehicleLateral()
    obs = np.array([0.01, 0.0, 0.005, 0.0])
    np.testing.assert_allclose(
        cn.experts.mpc(plant, 30)(obs), cn.experts.lqr(plant)(obs), atol=1e-3
    )


def test_errors(monkeypatch):
    plant = cn.plants.Pendulum()
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        cn.experts.mpc(plant, 0)
    with pytest.raises(ValueError, match="solver 'GUROBI' is not installed"):
        cn.experts.mpc(plant, solver="GUROBI")
    pi = cn.experts.mpc(plant, 5)
    monkeypatch.setattr(pi._problem, "solve", lambda **kw: None)
    monkeypatch.setattr(type(pi._problem), "status", property(lambda self: "infeasible"))
    with pytest.raises(SolverError, match="MPC solve failed with status 'infeasible'"):
        pi(np.array([1.0, 0.0, 0.0]))
