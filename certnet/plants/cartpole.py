"""Continuous-action cart-pole with gymnasium CartPole-v1's equations."""

from __future__ import annotations

import numpy as np
import torch

from certnet.plants.base import Plant

__all__ = ["CartPole"]


class CartPole(Plant):
    """Cart-pole with a continuous force: gymnasium ``CartPole-v1`` physics, force ∈ [−F, F].

    gymnasium has no continuous-action cart-pole; this is registered as
    ``certnet/ContinuousCartPole-v0``. θ = 0 is upright, positive clockwise (gymnasium's
    convention); the force is positive to the right.

    ==========  =======  ===============================
    state       unit     bounds
    ==========  =======  ===============================
    x           m        episode ends when |x| > 2.4
    x_dot       m s⁻¹    ℝ
    theta       rad      episode ends when |θ| > 12°
    theta_dot   rad s⁻¹  ℝ
    ==========  =======  ===============================

    ======  =====  ===========  =========================
    input   unit   bounds       notes
    ======  =====  ===========  =========================
    force   N      ±force_mag   clipped before it acts
    ======  =====  ===========  =========================

    Continuous model (gymnasium's, after Florian 2007), with M the total mass and l the half
    pole length: a = (F + m_p l θ̇² sin θ)/M, θ̈ = (g sin θ − cos θ · a)/(l (4/3 − m_p cos²θ/M)),
    ẍ = a − m_p l θ̈ cos θ / M; forward Euler with dt = 0.02 s (gymnasium's "euler").
    Observation: the state. Reward +1 per step (gymnasium's). Starts uniformly in ±0.05 for every
    state; truncated at 500 steps.

    Parameters
    ----------
    gravity, masscart, masspole, length : float
        m s⁻², kg, kg, m (length is half the pole, as gymnasium).
    force_mag : float
        Force limit F in N.
    dt : float
        Sampling period in s.
    x_threshold, theta_threshold : float
        Termination bounds in m and rad (``inf`` disables termination, e.g. for swing-up).
    input_saturation : {"clip", "refuse"}
        Clip out-of-range forces (default) or raise.
    """

    state_names = ("x", "x_dot", "theta", "theta_dot")
    state_units = ("m", "m/s", "rad", "rad/s")
    input_names = ("force",)
    input_units = ("N",)
    obs_names = ("x", "x_dot", "theta", "theta_dot")
    integrator = "euler"
    angle_states = (2,)
    env_id = "certnet/ContinuousCartPole-v0"
    perturbable = ("gravity", "masscart", "masspole", "length")
    max_episode_steps = 500

    def __init__(
        self,
        gravity: float = 9.8,
        masscart: float = 1.0,
        masspole: float = 0.1,
        length: float = 0.5,
        force_mag: float = 10.0,
        dt: float = 0.02,
        *,
        x_threshold: float = 2.4,
        theta_threshold: float = 12 * 2 * np.pi / 360,
        input_saturation: str = "clip",
    ) -> None:
        for name, v in (("gravity", gravity), ("masscart", masscart), ("masspole", masspole),
                        ("length", length), ("force_mag", force_mag), ("dt", dt),
                        ("x_threshold", x_threshold), ("theta_threshold", theta_threshold)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v!r}")
        self.gravity, self.masscart = float(gravity), float(masscart)
        self.masspole = float(masspole)
        self.length, self.force_mag, self.dt = float(length), float(force_mag), float(dt)
        self.x_threshold, self.theta_threshold = float(x_threshold), float(theta_threshold)
        super().__init__(
            u_min=-self.force_mag,
            u_max=self.force_mag,
            x_eq=[0.0, 0.0, 0.0, 0.0],
            u_eq=[0.0],
            obs_low=[-np.inf] * 4,
            obs_high=[np.inf] * 4,
            reset_low=[-0.05] * 4,
            reset_high=[0.05] * 4,
            settle_tolerance=[0.05, 0.05, 0.01, 0.05],
            input_saturation=input_saturation,
        )

    def vector_field(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """ẋ = [ẋ, ẍ, θ̇, θ̈] of gymnasium's cart-pole model."""
        total = self.masspole + self.masscart
        pml = self.masspole * self.length
        th, thdot = x[:, 2], x[:, 3]
        cos, sin = torch.cos(th), torch.sin(th)
        temp = (u[:, 0] + pml * thdot**2 * sin) / total
        thacc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / total))
        xacc = temp - pml * thacc * cos / total
        return torch.stack([x[:, 1], xacc, thdot, thacc], dim=1)

    def terminated(self, x: torch.Tensor) -> torch.Tensor:
        """|x| > x_threshold or |θ| > theta_threshold."""
        return (x[:, 0].abs() > self.x_threshold) | (x[:, 2].abs() > self.theta_threshold)

    def reward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """+1 per step, shape (B,)."""
        return torch.ones(x.shape[0], dtype=x.dtype)

    def cost_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Q = diag(1, 1, 10, 1), R = 0.1."""
        return np.diag([1.0, 1.0, 10.0, 1.0]), np.array([[0.1]])
