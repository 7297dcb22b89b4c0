"""The :class:`Plant` contract: one definition, batched differentiable torch dynamics.

A plant is a discrete-time map x⁺ = F(x, sat(u)) at sampling period ``dt`` (s), usually obtained by
integrating a continuous vector field ẋ = f(x, u) with a documented integrator, plus an
observation map y = h(x), a reward r(x, u) and named, documented saturations. Every other view
of the plant (python-control ``nlsys``, gymnasium ``Env``, linearisation) is derived from these
few methods, so the three views agree by construction.

Subclasses implement ``update`` (the discrete map on already-saturated inputs) or, for plants
with a continuous-time model, ``vector_field`` (and inherit ``update`` from the integrator),
plus ``reward``. Everything else has a default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Plant", "Rollout", "Saturation", "INTEGRATORS", "wrap_angle"]

INTEGRATORS = ("euler", "semi-implicit-euler", "rk4", "exact")
"""Integrators a plant may declare: forward Euler, semi-implicit (symplectic) Euler, classical
Runge–Kutta 4 (one stage per ``dt``, input held constant), and ``exact`` (linear plants: zero-order
hold by the matrix exponential)."""


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    """Wrap angles to [−π, π): ((a + π) mod 2π) − π, as gymnasium's ``angle_normalize``."""
    return torch.remainder(a + np.pi, 2 * np.pi) - np.pi


@dataclass(frozen=True)
class Saturation:
    """A named saturation that changes the dynamics; listed in ``plant.saturations``.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"torque"``.
    signal : str
        Name of the saturated input or state.
    low, high : float
        Limits, in the signal's SI unit.
    description : str
        Where it acts and why (shown in the spec sheet and to verifiers).
    """

    name: str
    signal: str
    low: float
    high: float
    description: str


@dataclass(frozen=True)
class Rollout:
    """Batched trajectories returned by :meth:`Plant.rollout`.

    Attributes
    ----------
    states : Tensor, shape (B, T+1, n)
        x_0 … x_T.
    actions : Tensor, shape (B, T, m)
        Commanded actions (before input saturation).
    rewards : Tensor, shape (B, T)
        r(x_t, u_t).
    terminated : Tensor of bool, shape (B, T)
        Whether the episode would have ended at step t (goal reached, pole fallen); the rollout
        itself never stops, so masks like ``~terminated.cumsum(1).bool()`` are left to the caller.
    """

    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor


class Plant:
    """Base class of certnet plants (see module docstring).

    Class attributes a subclass sets
    --------------------------------
    state_names, state_units, input_names, input_units, obs_names : tuple of str
    dt : float
        Sampling period in s.
    integrator : str
        One of :data:`INTEGRATORS`, or ``"discrete"`` for plants defined only as a map.
    angle_states : tuple of int
        Indices of angle states (differences to ``x_eq`` are wrapped to [−π, π)).
    env_id : str
        Registered gymnasium id of the plant's environment.
    max_episode_steps : int
        Truncation horizon of the environment.
    goal_reached_terminates : bool
        Whether termination means success (goal reached, MountainCar) rather than failure
        (cart-pole fallen).
    reward_threshold : float or None
        Return at which the environment counts as solved (gymnasium's ``reward_threshold``).
    perturbable : tuple of str
        Constructor arguments that the dynamics, reward and termination read at every step
        (nothing derived from them at construction), so an instance attribute may hold a (B,)
        tensor of per-sample values: what ``certnet.export.evaluate(..., parameters=…)``
        perturbs. Empty for plants whose parameters are baked into matrices (LTI).

    Instance attributes
    -------------------
    u_min, u_max : ndarray, shape (m,)
        Input limits (SI units); ``±inf`` where unlimited.
    x_eq, u_eq : ndarray
        Equilibrium used by :func:`~certnet.plants.linearize` and the LQR expert.
    obs_low, obs_high : ndarray
        Bounds of the observation (the gymnasium observation space).
    reset_low, reset_high : ndarray, shape (n,)
        Initial states of the environment are drawn uniformly from this box.
    settle_tolerance : ndarray, shape (n,)
        |x − x_eq| ≤ settle_tolerance (angles wrapped) counts as settled.
    input_saturation : {"clip", "refuse"}
        What :meth:`step` does with inputs outside [u_min, u_max]: clip them (gymnasium's
        behaviour) or raise ``ValueError``.
    """

    state_names: tuple[str, ...] = ()
    state_units: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()
    input_units: tuple[str, ...] = ()
    obs_names: tuple[str, ...] = ()
    dt: float = 0.0
    integrator: str = "discrete"
    angle_states: tuple[int, ...] = ()
    env_id: str = ""
    max_episode_steps: int = 200
    goal_reached_terminates: bool = False
    reward_threshold: float | None = None
    perturbable: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        u_min: Any,
        u_max: Any,
        x_eq: Any,
        u_eq: Any,
        obs_low: Any,
        obs_high: Any,
        reset_low: Any,
        reset_high: Any,
        settle_tolerance: Any,
        input_saturation: str = "clip",
    ) -> None:
        if input_saturation not in ("clip", "refuse"):
            raise ValueError(
                f"input_saturation must be 'clip' or 'refuse', got {input_saturation!r}"
            )
        if self.integrator not in (*INTEGRATORS, "discrete"):
            raise ValueError(
                f"unknown integrator {self.integrator!r}; choose one of {INTEGRATORS}"
            )
        n, m = self.n_states, self.n_inputs

        def vec(v: Any, k: int) -> np.ndarray:
            a = np.broadcast_to(np.asarray(v, dtype=np.float64), (k,)).copy()
            return a

        self.u_min = vec(u_min, m)
        self.u_max = vec(u_max, m)
        if np.any(self.u_min > self.u_max):
            raise ValueError(f"u_min {self.u_min} exceeds u_max {self.u_max}")
        self.x_eq = vec(x_eq, n)
        self.u_eq = vec(u_eq, m)
        self.obs_low = vec(obs_low, self.n_obs)
        self.obs_high = vec(obs_high, self.n_obs)
        self.reset_low = vec(reset_low, n)
        self.reset_high = vec(reset_high, n)
        self.settle_tolerance = vec(settle_tolerance, n)
        self.input_saturation = input_saturation

    # ------------------------------------------------------------------ sizes and spec
    @property
    def n_states(self) -> int:
        """Number of states n."""
        return len(self.state_names)

    @property
    def n_inputs(self) -> int:
        """Number of inputs m."""
        return len(self.input_names)

    @property
    def n_obs(self) -> int:
        """Length of the observation h(x)."""
        return len(self.obs_names)

    @property
    def saturations(self) -> tuple[Saturation, ...]:
        """Every saturation in the dynamics (inputs first), for spec sheets and verifiers."""
        return tuple(
            Saturation(
                f"{name}_limit",
                name,
                float(lo),
                float(hi),
                "input clipped to [u_min, u_max] before it acts"
                if self.input_saturation == "clip"
                else "inputs outside [u_min, u_max] are refused (ValueError)",
            )
            for name, lo, hi in zip(self.input_names, self.u_min, self.u_max, strict=True)
            if np.isfinite(lo) or np.isfinite(hi)
        ) + self._state_saturations()

    def _state_saturations(self) -> tuple[Saturation, ...]:
        return ()

    @property
    def has_vector_field(self) -> bool:
        """Whether the plant has a continuous-time model ẋ = f(x, u)."""
        return self.integrator != "discrete"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(states={list(self.state_names)}, "
            f"inputs={list(self.input_names)}, dt={self.dt}, integrator={self.integrator!r})"
        )

    # ------------------------------------------------------------------ model (subclasses)
    def vector_field(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Continuous-time model ẋ = f(x, u), batched: x (B, n), u (B, m) → (B, n).

        Raises
        ------
        TypeError
            The plant is defined only as a discrete-time map.
        """
        raise TypeError(
            f"{type(self).__name__} is a discrete-time map with no continuous-time vector field; "
            "use its discrete form (to_iosys(dt=plant.dt), linearize(..., continuous=False))"
        )

    def update(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """x⁺ = F(x, u) for an already-saturated u, by the declared integrator."""
        f, h = self.vector_field, self.dt
        u = u.to(x.dtype)
        if self.integrator == "euler":
            return x + h * f(x, u)
        if self.integrator == "rk4":
            k1 = f(x, u)
            k2 = f(x + 0.5 * h * k1, u)
            k3 = f(x + 0.5 * h * k2, u)
            k4 = f(x + h * k3, u)
            return x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        raise NotImplementedError(  # a subclass declaring another integrator defines update
            f"{type(self).__name__} declares integrator {self.integrator!r} but no update"
        )

    def reward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Reward r(x, u) of taking the commanded action u in state x, shape (B,)."""
        raise NotImplementedError

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        """Observation h(x) that a policy sees, (B, n) → (B, n_obs). Default: the state."""
        return x

    def state_from_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Invert :meth:`observe` (the state that produced ``obs``). Default: identity."""
        return obs

    def terminated(self, x: torch.Tensor) -> torch.Tensor:
        """Whether the environment's episode ends in state x, shape (B,) bool. Default: never."""
        return torch.zeros(x.shape[:-1], dtype=torch.bool, device=x.device)

    def cost_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Quadratic weights (Q (n, n), R (m, m)) used by the LQR/MPC experts. Default: I, I."""
        return np.eye(self.n_states), np.eye(self.n_inputs)

    # ------------------------------------------------------------------ checked public API
    def saturate(self, u: torch.Tensor) -> torch.Tensor:
        """Apply the input saturation: clip to [u_min, u_max], or refuse (ValueError)."""
        lo = torch.as_tensor(self.u_min, dtype=u.dtype, device=u.device)
        hi = torch.as_tensor(self.u_max, dtype=u.dtype, device=u.device)
        if self.input_saturation == "refuse":
            if bool(((u < lo) | (u > hi)).any()):
                raise ValueError(
                    f"{type(self).__name__} refuses inputs outside [u_min, u_max] = "
                    f"[{self.u_min.tolist()}, {self.u_max.tolist()}]; saturate the controller "
                    "output or build the plant with input_saturation='clip'"
                )
            return u
        return torch.maximum(torch.minimum(u, hi), lo)

    def _check(self, x: torch.Tensor, u: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"x must be a torch.Tensor of shape (B, {self.n_states}), got "
                f"{type(x).__name__}; convert with torch.as_tensor(x, dtype=torch.float64)"
            )
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.n_states:
            raise ValueError(
                f"x must have shape (B, {self.n_states}) with states {list(self.state_names)}, "
                f"got {tuple(x.shape)}; add a batch dimension with x[None] for a single state"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or inf; the state must be finite")
        if u is None:
            return (x,)
        if not isinstance(u, torch.Tensor):
            raise TypeError(
                f"u must be a torch.Tensor of shape (B, {self.n_inputs}), got {type(u).__name__}"
            )
        if u.ndim != 2 or u.shape != (x.shape[0], self.n_inputs):
            raise ValueError(
                f"u must have shape ({x.shape[0]}, {self.n_inputs}) with inputs "
                f"{list(self.input_names)} to match x of shape {tuple(x.shape)}, "
                f"got {tuple(u.shape)}"
            )
        if not u.is_floating_point():
            raise TypeError(f"u must be a floating-point tensor, got dtype {u.dtype}")
        if not bool(torch.isfinite(u).all()):
            raise ValueError("u contains NaN or inf; the input must be finite")
        return x, u

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One sampling period: x⁺ = F(x, sat(u)).

        Parameters
        ----------
        x : Tensor, shape (B, n)
            States (SI units); the result has the same dtype.
        u : Tensor, shape (B, m)
            Commanded inputs; saturated as :attr:`input_saturation` says. Computed in the dtype
            of x, except where a twin reproduces its original's arithmetic (Pendulum: the torque
            term in the dtype of u, as gymnasium does for float32 actions).

        Returns
        -------
        Tensor, shape (B, n)
            Differentiable in x and u (zero gradient through an active saturation).

        Raises
        ------
        TypeError
            x or u is not a floating torch tensor.
        ValueError
            Wrong shapes, NaN/inf, or (``input_saturation="refuse"``) inputs out of range.
        """
        x, u = self._check(x, u)
        return self.update(x, self.saturate(u))

    def rollout(
        self, policy: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, steps: int
    ) -> Rollout:
        """Simulate B closed loops at once: u_t = policy(h(x_t)), x_{t+1} = F(x_t, sat(u_t)).

        Parameters
        ----------
        policy : callable
            Maps observations (B, n_obs) to actions (B, m), torch in and torch out; gradients flow
            through it, so training can backpropagate through the rollout.
        x0 : Tensor, shape (B, n)
            Initial states.
        steps : int
            Number of steps T ≥ 1.

        Returns
        -------
        Rollout

        Raises
        ------
        ValueError
            ``steps`` < 1, bad x0, or a policy output of the wrong shape.
        """
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        (x,) = self._check(x0)
        xs, us, rs, ts = [x], [], [], []
        for _ in range(int(steps)):
            u = policy(self.observe(x))
            if not isinstance(u, torch.Tensor) or u.shape != (x.shape[0], self.n_inputs):
                got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
                raise ValueError(
                    f"policy must return a tensor of shape ({x.shape[0]}, {self.n_inputs}), "
                    f"got {got}"
                )
            rs.append(self.reward(x, u))
            x = self.update(x, self.saturate(u))
            us.append(u)
            xs.append(x)
            ts.append(self.terminated(x))
        return Rollout(torch.stack(xs, 1), torch.stack(us, 1), torch.stack(rs, 1),
                       torch.stack(ts, 1))

    def is_settled(self, x: torch.Tensor) -> torch.Tensor:
        """|x − x_eq| ≤ settle_tolerance componentwise (angles wrapped), shape (B,) bool."""
        err = x - torch.as_tensor(self.x_eq, dtype=x.dtype)
        if self.angle_states:
            idx = list(self.angle_states)
            err = err.clone()
            err[:, idx] = wrap_angle(err[:, idx])
        tol = torch.as_tensor(self.settle_tolerance, dtype=x.dtype)
        return (err.abs() <= tol).all(dim=-1)

    # ------------------------------------------------------------------ other views
    def env(self, **kwargs: Any):
        """This plant as a registered gymnasium environment (``gymnasium.make`` wrappers included).

        Parameters
        ----------
        **kwargs
            Passed to ``gymnasium.make`` (e.g. ``max_episode_steps``).

        Returns
        -------
        gymnasium.Env
            ``gymnasium.make(plant.env_id, plant=self, **kwargs)``: a
            :class:`~certnet.plants.PlantEnv` of this very instance inside gymnasium's
            ``TimeLimit`` / ``OrderEnforcing`` / ``PassiveEnvChecker`` wrappers.
        """
        import gymnasium

        from certnet.plants.env import register_envs

        register_envs()
        return gymnasium.make(self.env_id, plant=self, **kwargs)

    def to_iosys(self, dt: float | None = None, *, name: str | None = None):
        """This plant as a python-control ``NonlinearIOSystem``.

        Parameters
        ----------
        dt : float, optional
            ``None`` or ``plant.dt``: the discrete-time system x⁺ = F(x, sat(u)) (the exact twin
            of :meth:`step`; use it for sampled-data loops). ``0``: the continuous-time system
            ẋ = f(x, sat(u)) (plants with a vector field only; state saturations of the
            discrete map are not part of it).
        name : str, optional
            System name (default: the class name in lower case).

        Returns
        -------
        control.NonlinearIOSystem
            Inputs ``input_names``, states ``state_names``, outputs ``obs_names``.
        """
        from certnet.plants.iosys import plant_iosys

        return plant_iosys(self, dt, name=name)
