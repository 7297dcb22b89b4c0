"""Exact linearisation of a plant by automatic differentiation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from certnet.plants.base import Plant

__all__ = ["linearize"]


def linearize(
    plant: Plant, x_eq: Any = None, u_eq: Any = None, *, continuous: bool = False
):
    """Jacobians of the plant at (x_eq, u_eq), exact to round-off, as a ``control.StateSpace``.

    Discrete (default): A = ∂F/∂x, B = ∂F/∂u of x⁺ = F(x, u) at sampling period ``plant.dt``.
    Continuous: A = ∂f/∂x, B = ∂f/∂u of ẋ = f(x, u). In both, C = ∂h/∂x of the observation and
    D = 0. Input saturation is not applied (the Jacobian of the unsaturated model is what
    LQR needs); a state saturation counts as inactive at an interior point.

    Parameters
    ----------
    plant : Plant
    x_eq : array_like, shape (n,), optional
        Operating state (default ``plant.x_eq``), SI units.
    u_eq : array_like, shape (m,), optional
        Operating input (default ``plant.u_eq``).
    continuous : bool
        Linearise the continuous-time vector field instead of the discrete map.

    Returns
    -------
    control.StateSpace
        With the plant's state, input and observation names; ``dt = plant.dt`` or 0.

    Raises
    ------
    ValueError
        x_eq or u_eq of the wrong length or not finite.
    TypeError
        ``continuous=True`` for a plant defined only as a discrete map.

    Examples
    --------
    >>> import certnet as cn
    >>> sys = cn.plants.linearize(cn.plants.Pendulum())
    >>> sys.A.round(4).tolist()
    [[1.0375, 0.05], [0.75, 1.0]]
    """
    import control

    def point(v: Any, default: np.ndarray, n: int, what: str) -> torch.Tensor:
        a = np.asarray(default if v is None else v, dtype=np.float64).reshape(-1)
        if a.shape != (n,) or not np.isfinite(a).all():
            raise ValueError(f"{what} must be {n} finite numbers, got {v!r}")
        return torch.tensor(a)

    if continuous and not plant.has_vector_field:
        raise TypeError(
            f"{type(plant).__name__} is a discrete-time map with no continuous-time model; "
            "linearise its discrete map with continuous=False"
        )
    x0 = point(x_eq, plant.x_eq, plant.n_states, "x_eq")
    u0 = point(u_eq, plant.u_eq, plant.n_inputs, "u_eq")
    fn = plant.vector_field if continuous else plant.update
    A, B = torch.autograd.functional.jacobian(
        lambda x, u: fn(x[None], u[None])[0], (x0, u0)
    )
    C = torch.autograd.functional.jacobian(lambda x: plant.observe(x[None])[0], x0)
    D = np.zeros((plant.n_obs, plant.n_inputs))
    return control.ss(
        A.numpy(), B.numpy(), C.numpy(), D,
        0 if continuous else plant.dt,
        states=list(plant.state_names),
        inputs=list(plant.input_names),
        outputs=list(plant.obs_names),
        name=f"{type(plant).__name__.lower()}_lin",
    )
