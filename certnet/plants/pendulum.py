"""Pendulums: the gymnasium Pendulum-v1 twin and the Yin–Seiler–Arcak inverted pendulum."""

from __future__ import annotations

import numpy as np
import torch

from certnet.plants.base import Plant, Saturation, wrap_angle

__all__ = ["Pendulum", "InvertedPendulum"]


class Pendulum(Plant):
    """Exact twin of gymnasium ``Pendulum-v1``: a uniform rod swung by a torque at its pivot.

    θ = 0 is upright, positive counter-clockwise; torque positive counter-clockwise.

    ==========  ==========  =======  ========================================
    state       unit        bounds   notes
    ==========  ==========  =======  ========================================
    theta       rad         ℝ        not wrapped (gymnasium does not wrap it)
    theta_dot   rad s⁻¹     ±8       saturated, see below
    ==========  ==========  =======  ========================================

    ======  =====  ======  ===================================
    input   unit   bounds  notes
    ======  =====  ======  ===================================
    torque  N m    ±2      clipped before it acts (gymnasium)
    ======  =====  ======  ===================================

    Observation h(x) = [cos θ, sin θ, θ̇] ∈ [−1, 1] × [−1, 1] × [−8, 8].

    Dynamics (semi-implicit Euler, dt = 0.05 s, as gymnasium):

        θ̇⁺ = clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) sat(u)) dt, ±max_speed)
        θ⁺ = θ + θ̇⁺ dt

    with the continuous model θ̈ = 3g/(2l) sin θ + 3/(m l²) u (rod of inertia m l²/3).

    Saturations (both part of the dynamics, both listed in ``saturations``):
    ``torque_limit`` clips u to ±max_torque; ``speed_limit`` clips θ̇⁺ to ±max_speed, which
    gymnasium does silently and which a verifier must model.

    Reward r(x, u) = −(wrap(θ)² + 0.1 θ̇² + 0.001 sat(u)²) of the state *before* the step.
    Episodes start uniformly in θ ∈ [−π, π], θ̇ ∈ [−1, 1]; truncated at 200 steps; never terminate.

    Parameters
    ----------
    g : float
        Gravity in m s⁻² (gymnasium's default 10.0; ``g=9.81`` matches ``gym.make(..., g=9.81)``).
    mass : float
        Rod mass in kg (1.0).
    length : float
        Rod length in m (1.0).
    max_torque : float
        Torque limit in N m (2.0).
    max_speed : float
        Angular-speed limit in rad s⁻¹ (8.0).
    dt : float
        Sampling period in s (0.05).
    input_saturation : {"clip", "refuse"}
        Clip out-of-range torques as gymnasium does (default), or raise.

    Notes
    -----
    Version history: v1 follows gymnasium ``Pendulum-v1`` (gymnasium ≥ 1.0).

    Examples
    --------
    >>> import torch
    >>> p = Pendulum()
    >>> p.step(torch.tensor([[0.1, 0.0]], dtype=torch.float64), torch.zeros(1, 1)).shape
    torch.Size([1, 2])
    """

    state_names = ("theta", "theta_dot")
    state_units = ("rad", "rad/s")
    input_names = ("torque",)
    input_units = ("N m",)
    obs_names = ("cos_theta", "sin_theta", "theta_dot")
    integrator = "semi-implicit-euler"
    angle_states = (0,)
    env_id = "certnet/Pendulum-v1"
    perturbable = ("g", "mass", "length")
    max_episode_steps = 200

    def __init__(
        self,
        g: float = 10.0,
        mass: float = 1.0,
        length: float = 1.0,
        max_torque: float = 2.0,
        max_speed: float = 8.0,
        dt: float = 0.05,
        *,
        input_saturation: str = "clip",
    ) -> None:
        for name, v in (("g", g), ("mass", mass), ("length", length), ("max_torque", max_torque),
                        ("max_speed", max_speed), ("dt", dt)):
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        self.g, self.mass, self.length = float(g), float(mass), float(length)
        self.max_torque, self.max_speed, self.dt = float(max_torque), float(max_speed), float(dt)
        super().__init__(
            u_min=-self.max_torque,
            u_max=self.max_torque,
            x_eq=[0.0, 0.0],
            u_eq=[0.0],
            obs_low=[-1.0, -1.0, -self.max_speed],
            obs_high=[1.0, 1.0, self.max_speed],
            reset_low=[-np.pi, -1.0],
            reset_high=[np.pi, 1.0],
            settle_tolerance=[0.02 * np.pi, 0.02 * self.max_speed],
            input_saturation=input_saturation,
        )

    def _state_saturations(self) -> tuple[Saturation, ...]:
        return (
            Saturation("speed_limit", "theta_dot", -self.max_speed, self.max_speed,
                       "θ̇ clipped after each velocity update (gymnasium Pendulum-v1)"),
        )

    def vector_field(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """ẋ = [θ̇, 3g/(2l) sin θ + 3/(m l²) u] (no speed saturation in continuous time)."""
        th, thdot = x[:, 0], x[:, 1]
        acc = 3 * self.g / (2 * self.length) * torch.sin(th) + 3.0 / (
            self.mass * self.length**2) * u[:, 0].to(x.dtype)
        return torch.stack([thdot, acc], dim=1)

    def update(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        # Note [float32 torque]: gymnasium multiplies the float32 action by 3/(m l²) in float32
        # (NumPy ≥ 2 promotion), then adds it to float64; computing the product in u's dtype
        # keeps the twin exact for float32 actions (1e-5 apart after 200 steps otherwise).
        th, thdot = x[:, 0], x[:, 1]
        torque_term = (3.0 / (self.mass * self.length**2) * u[:, 0]).to(x.dtype)
        acc = 3 * self.g / (2 * self.length) * torch.sin(th) + torque_term
        newthdot = torch.clamp(thdot + acc * self.dt, -self.max_speed, self.max_speed)
        return torch.stack([th + newthdot * self.dt, newthdot], dim=1)

    def reward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """−(wrap(θ)² + 0.1 θ̇² + 0.001 sat(u)²), shape (B,)."""
        u = torch.clamp(u[:, 0], -self.max_torque, self.max_torque)
        effort = (0.001 * u**2).to(x.dtype)  # in u's dtype, see Note [float32 torque]
        return -(wrap_angle(x[:, 0]) ** 2 + 0.1 * x[:, 1] ** 2 + effort)

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        """[cos θ, sin θ, θ̇]."""
        return torch.stack([torch.cos(x[:, 0]), torch.sin(x[:, 0]), x[:, 1]], dim=1)

    def state_from_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """(atan2(sin θ, cos θ), θ̇): θ comes back wrapped to (−π, π]."""
        return torch.stack([torch.atan2(obs[:, 1], obs[:, 0]), obs[:, 2]], dim=1)

    def cost_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The reward's weights: Q = diag(1, 0.1), R = 0.001."""
        return np.diag([1.0, 0.1]), np.array([[0.001]])


class InvertedPendulum(Plant):
    """Point-mass pendulum with viscous friction (Yin, Seiler & Arcak 2022 benchmark).

    θ = 0 is upright; torque positive in the direction of positive θ.

    ==========  ========  ======
    state       unit      bounds
    ==========  ========  ======
    theta       rad       ℝ
    theta_dot   rad s⁻¹   ℝ
    ==========  ========  ======

    ======  =====  ==============================================
    input   unit   bounds
    ======  =====  ==============================================
    torque  N m    ±max_torque (default unlimited, as the paper's
                   unsaturated benchmark; pass a finite value for
                   the saturated variant)
    ======  =====  ==============================================

    Continuous model θ̈ = (g/l) sin θ − μ/(m l²) θ̇ + u/(m l²), g = 10 m s⁻², m = 0.15 kg,
    l = 0.5 m, μ = 0.05 N m s rad⁻¹, discretised by forward Euler with dt = 0.02 s (the paper's
    discretisation). Observation: the state. Holding the pendulum at angle θ statically takes
    m g l sin θ ≤ 0.75 N m.

    Reward r(x, u) = −(wrap(θ)² + 0.1 θ̇² + 0.001 u²). Episodes start uniformly in
    θ ∈ [−1, 1] rad, θ̇ ∈ [−1, 1] rad s⁻¹; truncated at 250 steps (5 s).

    Parameters
    ----------
    g, mass, length, friction : float
        m s⁻², kg, m, N m s rad⁻¹.
    max_torque : float
        Torque limit in N m (``inf``: no saturation).
    dt : float
        Sampling period in s.
    integrator : {"euler", "rk4"}
        Forward Euler (the benchmark) or RK4.
    input_saturation : {"clip", "refuse"}
        Clip out-of-range torques (default) or raise.
    """

    state_names = ("theta", "theta_dot")
    state_units = ("rad", "rad/s")
    input_names = ("torque",)
    input_units = ("N m",)
    obs_names = ("theta", "theta_dot")
    angle_states = (0,)
    env_id = "certnet/InvertedPendulum-v0"
    perturbable = ("g", "mass", "length", "friction")
    max_episode_steps = 250

    def __init__(
        self,
        g: float = 10.0,
        mass: float = 0.15,
        length: float = 0.5,
        friction: float = 0.05,
        max_torque: float = float("inf"),
        dt: float = 0.02,
        *,
        integrator: str = "euler",
        input_saturation: str = "clip",
    ) -> None:
        for name, v in (("g", g), ("mass", mass), ("length", length), ("dt", dt)):
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if not friction >= 0:
            raise ValueError(f"friction must be ≥ 0 (N m s/rad), got {friction!r}")
        if not max_torque > 0:
            raise ValueError(f"max_torque must be > 0 N m (inf for no limit), got {max_torque!r}")
        if integrator not in ("euler", "rk4"):
            raise ValueError(f"integrator must be 'euler' or 'rk4', got {integrator!r}")
        self.g, self.mass, self.length = float(g), float(mass), float(length)
        self.friction, self.max_torque, self.dt = float(friction), float(max_torque), float(dt)
        self.integrator = integrator
        super().__init__(
            u_min=-self.max_torque,
            u_max=self.max_torque,
            x_eq=[0.0, 0.0],
            u_eq=[0.0],
            obs_low=[-np.inf, -np.inf],
            obs_high=[np.inf, np.inf],
            reset_low=[-1.0, -1.0],
            reset_high=[1.0, 1.0],
            settle_tolerance=[0.02, 0.05],
            input_saturation=input_saturation,
        )

    def vector_field(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """ẋ = [θ̇, (g/l) sin θ − μ/(m l²) θ̇ + u/(m l²)]."""
        ml2 = self.mass * self.length**2
        th, thdot = x[:, 0], x[:, 1]
        acc = (self.g / self.length * torch.sin(th) - self.friction / ml2 * thdot
               + u[:, 0].to(x.dtype) / ml2)
        return torch.stack([thdot, acc], dim=1)

    def reward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """−(wrap(θ)² + 0.1 θ̇² + 0.001 u²), shape (B,)."""
        return -(wrap_angle(x[:, 0]) ** 2 + 0.1 * x[:, 1] ** 2 + 0.001 * u[:, 0].to(x.dtype) ** 2)

    def cost_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Q = diag(1, 0.1), R = 0.001 (the reward's weights)."""
        return np.diag([1.0, 0.1]), np.array([[0.001]])
