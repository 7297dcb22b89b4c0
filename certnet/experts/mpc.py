"""Linear MPC with input limits (a quadratic programme in cvxpy, solved by OSQP)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from certnet.errors import SolverError
from certnet.experts.lqr import lqr
from certnet.plants.base import Plant
from certnet.plants.policy import apply_policy

__all__ = ["LinearMPC", "mpc"]


class LinearMPC:
    """Receding-horizon controller on the plant's discrete linearisation (see :func:`mpc`).

    Attributes
    ----------
    horizon : int
    solver : str
        cvxpy solver name.
    last_status : str
        cvxpy status of the most recent solve.
    """

    def __init__(self, plant: Plant, horizon: int, Q: np.ndarray, R: np.ndarray,
                 solver: str) -> None:
        import cvxpy as cp

        lin = lqr(plant, Q, R, saturate=False)
        A, B = np.asarray(lin.sys.A), np.asarray(lin.sys.B)
        n, m = B.shape
        self.plant, self.horizon, self.solver, self.lqr = plant, horizon, solver, lin
        self.last_status = ""
        self._x0 = cp.Parameter(n)
        x = cp.Variable((horizon + 1, n))
        v = cp.Variable((horizon, m))
        S = 0.5 * (lin.S + lin.S.T)
        cost = cp.quad_form(x[horizon], S)
        cons = [x[0] == self._x0]
        dlo, dhi = plant.u_min - plant.u_eq, plant.u_max - plant.u_eq
        for k in range(horizon):
            cost += cp.quad_form(x[k], Q) + cp.quad_form(v[k], R)
            cons.append(x[k + 1] == A @ x[k] + B @ v[k])
            for j in range(m):
                if np.isfinite(dlo[j]):
                    cons.append(v[k, j] >= dlo[j])
                if np.isfinite(dhi[j]):
                    cons.append(v[k, j] <= dhi[j])
        self._v0 = v[0]
        self._problem = cp.Problem(cp.Minimize(cost), cons)

    def _solve_one(self, err: np.ndarray) -> np.ndarray:
        import cvxpy as cp

        self._x0.value = err
        self._problem.solve(solver=self.solver, warm_start=True)
        self.last_status = self._problem.status
        if self._problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise SolverError(
                f"MPC solve failed with status {self._problem.status!r} ({self.solver}); the "
                "state may be far outside the region the linear model describes"
            )
        return self.plant.u_eq + np.asarray(self._v0.value)

    def _act(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            err = self.lqr.state_error(self.plant.state_from_obs(obs)).double().numpy()
        u = np.stack([self._solve_one(e) for e in err])
        u = np.clip(u, self.plant.u_min, self.plant.u_max)  # OSQP meets bounds to its tolerance
        return torch.as_tensor(u, dtype=obs.dtype)

    def __call__(self, obs: Any) -> Any:
        return apply_policy(self._act, obs, self.plant.n_obs)


def mpc(
    plant: Plant,
    horizon: int = 20,
    Q: Any = None,
    R: Any = None,
    *,
    solver: str = "OSQP",
) -> LinearMPC:
    """Linear MPC expert with input limits.

    At each call, for the state error e = x − x_eq (angles wrapped), solves

        min Σ_{k<N} (x_kᵀ Q x_k + v_kᵀ R v_k) + x_Nᵀ S x_N
        s.t. x_0 = e, x_{k+1} = A x_k + B v_k, u_min − u_eq ≤ v_k ≤ u_max − u_eq,

    on the exact discrete linearisation (A, B) with S the dLQR cost-to-go, and applies
    u = u_eq + v_0. A batch of observations is solved one QP at a time (not differentiable).

    Parameters
    ----------
    plant : Plant
    horizon : int
        N ≥ 1 steps.
    Q, R : array_like, optional
        Weights (default ``plant.cost_weights()``).
    solver : str
        cvxpy solver for the QP (default ``"OSQP"``; ``"CLARABEL"`` also works).

    Returns
    -------
    LinearMPC

    Raises
    ------
    ValueError
        horizon < 1 or a solver cvxpy does not have.
    SolverError
        (when called) the QP was not solved.
    """
    import cvxpy as cp

    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    if solver not in cp.installed_solvers():
        raise ValueError(
            f"solver {solver!r} is not installed; choose one of {cp.installed_solvers()}"
        )
    Q0, R0 = plant.cost_weights()
    Q = Q0 if Q is None else np.atleast_2d(np.asarray(Q, dtype=float))
    R = R0 if R is None else np.atleast_2d(np.asarray(R, dtype=float))
    return LinearMPC(plant, int(horizon), Q, R, solver)
