"""LQR / dLQR experts from the exact (autodiff) linearisation, via python-control."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from certnet.plants.base import Plant, wrap_angle
from certnet.plants.linearize import linearize
from certnet.plants.policy import apply_policy

__all__ = ["LinearPolicy", "lqr"]


class LinearPolicy:
    """State feedback u = sat(u_eq − K (x − x_eq)), with x recovered from the observation.

    Angle errors are wrapped to [−π, π). Callable on numpy or torch observations, one or a
    batch (torch in → torch out, differentiable).

    Attributes
    ----------
    K : ndarray, shape (m, n)
        Gain.
    S : ndarray, shape (n, n)
        Riccati solution (cost-to-go xᵀSx of the linearisation).
    E : ndarray, shape (n,)
        Closed-loop eigenvalues of the linearisation.
    sys : control.StateSpace
        The linearisation K was designed for.
    """

    def __init__(self, plant: Plant, K: np.ndarray, S: np.ndarray, E: np.ndarray, sys: Any,
                 *, saturate: bool = True) -> None:
        self.plant, self.sys = plant, sys
        self.K, self.S, self.E = np.asarray(K, float), np.asarray(S, float), np.asarray(E)
        self.saturate = saturate

    def state_error(self, x: torch.Tensor) -> torch.Tensor:
        """x − x_eq with angle states wrapped to [−π, π), shape (B, n)."""
        err = x - torch.as_tensor(self.plant.x_eq, dtype=x.dtype)
        if self.plant.angle_states:
            idx = list(self.plant.angle_states)
            err = err.clone()
            err[:, idx] = wrap_angle(err[:, idx])
        return err

    def _act(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.plant.state_from_obs(obs)
        u = torch.as_tensor(self.plant.u_eq, dtype=x.dtype) - self.state_error(x) @ torch.as_tensor(
            self.K.T, dtype=x.dtype)
        if self.saturate:
            lo = torch.as_tensor(self.plant.u_min, dtype=x.dtype)
            hi = torch.as_tensor(self.plant.u_max, dtype=x.dtype)
            u = torch.maximum(torch.minimum(u, hi), lo)
        return u

    def __call__(self, obs: Any) -> Any:
        return apply_policy(self._act, obs, self.plant.n_obs)


def lqr(
    plant: Plant,
    Q: Any = None,
    R: Any = None,
    *,
    continuous: bool = False,
    saturate: bool = True,
) -> LinearPolicy:
    """LQR expert at the plant's equilibrium: dLQR on the discrete linearisation (default).

    Minimises Σ (x_kᵀ Q x_k + u_kᵀ R u_k) for x⁺ = A x + B u, the exact Jacobians of the plant's
    discrete map at (x_eq, u_eq) (``control.dlqr``); with ``continuous=True``, the continuous
    LQR of ẋ = A x + B u (``control.lqr``).

    Parameters
    ----------
    plant : Plant
    Q : array_like, shape (n, n), optional
        State weight (default ``plant.cost_weights()[0]``; Pendulum: diag(1, 0.1)).
    R : array_like, shape (m, m), optional
        Input weight (default ``plant.cost_weights()[1]``; Pendulum: 0.001).
    continuous : bool
        Design on the continuous-time model.
    saturate : bool
        Clip the action to [u_min, u_max] (default True).

    Returns
    -------
    LinearPolicy

    Raises
    ------
    ValueError
        Q or R of the wrong shape.

    Examples
    --------
    >>> import certnet as cn
    >>> pi = cn.experts.lqr(cn.plants.Pendulum())
    >>> pi.K.round(2).tolist()
    [[19.69, 5.26]]
    """
    import control

    Q0, R0 = plant.cost_weights()
    Q = Q0 if Q is None else np.atleast_2d(np.asarray(Q, dtype=float))
    R = R0 if R is None else np.atleast_2d(np.asarray(R, dtype=float))
    n, m = plant.n_states, plant.n_inputs
    if Q.shape != (n, n) or R.shape != (m, m):
        raise ValueError(f"Q must be ({n}, {n}) and R ({m}, {m}), got {Q.shape} and {R.shape}")
    sys = linearize(plant, continuous=continuous)
    design = control.lqr if continuous else control.dlqr
    K, S, E = design(sys.A, sys.B, Q, R)
    return LinearPolicy(plant, K, S, E, sys, saturate=saturate)
