"""Twin of gymnasium ``MountainCarContinuous-v0``."""

from __future__ import annotations

import numpy as np
import torch

from certnet.plants.base import Plant, Saturation

__all__ = ["MountainCar"]


class MountainCar(Plant):
    """Exact twin of gymnasium ``MountainCarContinuous-v0`` (a discrete-time map).

    The model is unitless, as in gymnasium: one step is one time unit (``dt = 1``), position is
    in "track units" and velocity in track units per step.

    =========  ================  ==============  ==========================
    state      unit              bounds          notes
    =========  ================  ==============  ==========================
    position   track unit        [−1.2, 0.6]     saturated (walls)
    velocity   track unit/step   [−0.07, 0.07]   saturated; zeroed at the
                                                 left wall when negative
    =========  ================  ==============  ==========================

    =======  =========  ========  ===========================
    input    unit       bounds    notes
    =======  =========  ========  ===========================
    force    unitless   [−1, 1]   clipped before it acts
    =======  =========  ========  ===========================

    Dynamics: v⁺ = clip(v + 0.0015 sat(a) − 0.0025 cos 3x, ±0.07), x⁺ = clip(x + v⁺, [−1.2, 0.6]),
    and v⁺ = 0 if x⁺ = −1.2 and v⁺ < 0. Observation: the state.

    Reward r(x, a) = 100·[x⁺ ≥ 0.45 and v⁺ ≥ goal_velocity] − 0.1 a², with the *commanded*
    (unclipped) action a, as gymnasium. The episode terminates at the goal; starts with
    x ∈ [−0.6, −0.4], v = 0; truncated at 999 steps; solved at a mean return ≥ 90.

    Parameters
    ----------
    goal_velocity : float
        Minimum velocity at the goal (gymnasium's default 0).
    input_saturation : {"clip", "refuse"}
        Clip out-of-range forces as gymnasium does (default), or raise.

    Notes
    -----
    gymnasium stores the state in float32 and computes the step in float32; this twin computes in
    the dtype of ``x`` (float64 recommended), so the two differ by float32 round-off
    (≲ 1e-6 over 200 steps).
    """

    state_names = ("position", "velocity")
    state_units = ("track unit", "track unit/step")
    input_names = ("force",)
    input_units = ("1",)
    obs_names = ("position", "velocity")
    dt = 1.0
    integrator = "discrete"
    env_id = "certnet/MountainCarContinuous-v0"
    perturbable = ("goal_velocity",)
    max_episode_steps = 999
    goal_reached_terminates = True
    reward_threshold = 90.0

    min_position, max_position, max_speed = -1.2, 0.6, 0.07
    goal_position, power = 0.45, 0.0015

    def __init__(self, goal_velocity: float = 0.0, *, input_saturation: str = "clip") -> None:
        self.goal_velocity = float(goal_velocity)
        super().__init__(
            u_min=-1.0,
            u_max=1.0,
            x_eq=[-np.pi / 6, 0.0],
            u_eq=[0.0],
            obs_low=[self.min_position, -self.max_speed],
            obs_high=[self.max_position, self.max_speed],
            reset_low=[-0.6, 0.0],
            reset_high=[-0.4, 0.0],
            settle_tolerance=[0.02, 0.0014],
            input_saturation=input_saturation,
        )

    def _state_saturations(self) -> tuple[Saturation, ...]:
        return (
            Saturation("speed_limit", "velocity", -self.max_speed, self.max_speed,
                       "velocity clipped after each update"),
            Saturation("walls", "position", self.min_position, self.max_position,
                       "position clipped; velocity zeroed when the car hits the left wall"),
        )

    def update(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        pos, vel = x[:, 0], x[:, 1]
        vel = torch.clamp(vel + u[:, 0].to(x.dtype) * self.power - 0.0025 * torch.cos(3 * pos),
                          -self.max_speed, self.max_speed)
        pos = torch.clamp(pos + vel, self.min_position, self.max_position)
        vel = torch.where((pos <= self.min_position) & (vel < 0), torch.zeros_like(vel), vel)
        return torch.stack([pos, vel], dim=1)

    def terminated(self, x: torch.Tensor) -> torch.Tensor:
        """Goal reached: position ≥ 0.45 and velocity ≥ goal_velocity."""
        return (x[:, 0] >= self.goal_position) & (x[:, 1] >= self.goal_velocity)

    def reward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """100·[goal reached after the step] − 0.1 a² (a as commanded), shape (B,)."""
        u = u.to(x.dtype)
        goal = self.terminated(self.update(x, self.saturate(u))).to(x.dtype)
        return 100.0 * goal - 0.1 * u[:, 0] ** 2

    def cost_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Q = diag(1, 100) (velocity is ~30× smaller than position), R = 0.1."""
        return np.diag([1.0, 100.0]), np.array([[0.1]])
