"""Linear plants: any ``control.StateSpace``, and vehicle lateral dynamics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from certnet.plants.base import Plant

__all__ = ["LTI", "VehicleLateral"]


class LTI(Plant):
    """A linear plant x⁺ = A_d x + B_d sat(u) from a ``control.StateSpace``.

    A continuous-time system (``sys.dt == 0``) is sampled exactly with a zero-order hold at
    ``dt`` (integrator ``"exact"``: A_d = e^{A dt}, B_d = ∫₀^dt e^{As} ds B) and keeps its vector
    field ẋ = A x + B u; a discrete-time system is used as it is. The plant observes its full
    state (state feedback); ``sys`` keeps C and D for output analysis.

    Parameters
    ----------
    sys : control.StateSpace
        The linear model (SI units); its state and input labels name the signals.
    dt : float, optional
        Sampling period in s; required for a continuous system, must equal ``sys.dt`` (or be
        omitted) for a discrete one.
    u_min, u_max : float or array_like, shape (m,)
        Input limits (default unlimited).
    Q, R : array_like, optional
        Weights of the reward −(xᵀQx + uᵀRu) and of the LQR/MPC experts (default I, I).
    reset_bound : float
        Episodes start uniformly in [−reset_bound, reset_bound]ⁿ.
    input_saturation : {"clip", "refuse"}
        Clip out-of-range inputs (default) or raise.

    Raises
    ------
    TypeError
        ``sys`` is not a ``control.StateSpace``.
    ValueError
        Missing or inconsistent ``dt``; Q or R of the wrong shape.
    """

    env_id = "certnet/LTI-v0"
    max_episode_steps = 200

    def __init__(
        self,
        sys: Any,
        dt: float | None = None,
        *,
        u_min: Any = -np.inf,
        u_max: Any = np.inf,
        Q: Any = None,
        R: Any = None,
        reset_bound: float = 1.0,
        input_saturation: str = "clip",
    ) -> None:
        import control

        if not isinstance(sys, control.StateSpace):
            raise TypeError(
                f"sys must be a control.StateSpace, got {type(sys).__name__}; "
                "convert a transfer function with control.ss(tf)"
            )
        if sys.dt == 0:
            if dt is None or not dt > 0:
                raise ValueError(
                    f"sys is continuous-time; pass the sampling period, e.g. LTI(sys, dt=0.02), "
                    f"got dt={dt!r}"
                )
            self.integrator = "exact"
            dsys = control.sample_system(sys, dt, method="zoh")
        else:
            if sys.dt is True or sys.dt is None:
                raise ValueError(
                    "sys is discrete-time with an unspecified sampling period; build it with a "
                    "numeric dt, e.g. control.ss(A, B, C, D, 0.02)"
                )
            if dt is not None and not np.isclose(dt, sys.dt):
                raise ValueError(f"dt={dt} differs from the discrete system's dt={sys.dt}")
            self.integrator = "discrete"
            dt, dsys = float(sys.dt), sys
        self.sys = sys
        self.dt = float(dt)
        n, m = sys.nstates, sys.ninputs
        self.state_names = tuple(sys.state_labels)
        self.input_names = tuple(sys.input_labels)
        self.obs_names = self.state_names
        self.state_units = ("",) * n
        self.input_units = ("",) * m
        self.A, self.B = np.asarray(sys.A, float), np.asarray(sys.B, float)
        self.Ad, self.Bd = np.asarray(dsys.A, float), np.asarray(dsys.B, float)
        self.Q = np.eye(n) if Q is None else np.atleast_2d(np.asarray(Q, dtype=float))
        self.R = np.eye(m) if R is None else np.atleast_2d(np.asarray(R, dtype=float))
        if self.Q.shape != (n, n) or self.R.shape != (m, m):
            raise ValueError(
                f"Q must be ({n}, {n}) and R ({m}, {m}), got {self.Q.shape} and {self.R.shape}"
            )
        super().__init__(
            u_min=u_min,
            u_max=u_max,
            x_eq=np.zeros(n),
            u_eq=np.zeros(m),
            obs_low=-np.inf,
            obs_high=np.inf,
            reset_low=-reset_bound,
            reset_high=reset_bound,
            settle_tolerance=0.02 * reset_bound,
            input_saturation=input_saturation,
        )

    def vector_field(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """ẋ = A x + B u (continuous systems only)."""
        if self.integrator == "discrete":
            return super().vector_field(x, u)
        return x @ torch.as_tensor(self.A.T, dtype=x.dtype) + u.to(x.dtype) @ torch.as_tensor(
            self.B.T, dtype=x.dtype)

    def update(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x @ torch.as_tensor(self.Ad.T, dtype=x.dtype) + u.to(x.dtype) @ torch.as_tensor(
            self.Bd.T, dtype=x.dtype)

    def reward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """−(xᵀQx + uᵀRu), shape (B,)."""
        u = u.to(x.dtype)
        Q, R = torch.as_tensor(self.Q, dtype=x.dtype), torch.as_tensor(self.R, dtype=x.dtype)
        return -(((x @ Q) * x).sum(-1) + ((u @ R) * u).sum(-1))

    def cost_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(Q, R) as given."""
        return self.Q.copy(), self.R.copy()


class VehicleLateral(LTI):
    """Vehicle lateral error dynamics at constant speed (Rajamani's bicycle model), linear.

    The benchmark of Yin, Seiler & Arcak (2022): lane keeping on a straight road.

    ============  =======  ======
    state         unit     bounds
    ============  =======  ======
    e             m        ℝ       lateral error to the lane centre
    e_dot         m s⁻¹    ℝ
    e_psi         rad      ℝ       heading error
    e_psi_dot     rad s⁻¹  ℝ
    ============  =======  ======

    ======  =====  ==================  ==========================
    input   unit   bounds              notes
    ======  =====  ==================  ==========================
    delta   rad    ±30° (±0.5236)      steering angle, clipped
    ======  =====  ==================  ==========================

    With C_f, C_r the per-wheel cornering stiffnesses (magnitudes; the paper lists them with a
    negative sign convention), U the speed, a/b the distances of the axles from the centre of
    mass:

        ë = −2(C_f+C_r)/(mU) ė + 2(C_f+C_r)/m e_ψ + 2(−C_f a + C_r b)/(mU) ė_ψ + 2C_f/m δ
        ë_ψ = −2(C_f a − C_r b)/(I_z U) ė + 2(C_f a − C_r b)/I_z e_ψ
              − 2(C_f a² + C_r b²)/(I_z U) ė_ψ + 2 C_f a/I_z δ

    sampled exactly with a zero-order hold at dt = 0.02 s. Reward −(eᵀQe + R δ²) with
    Q = diag(1, 0.1, 1, 0.1), R = 1. Episodes start uniformly in ±0.5 for each state; truncated
    at 500 steps (10 s).

    Parameters
    ----------
    speed : float
        U in m s⁻¹ (28).
    mass : float
        m in kg (1670).
    inertia : float
        I_z in kg m² (2100).
    a, b : float
        Centre of mass to front / rear axle in m (0.99, 1.7).
    c_front, c_rear : float
        Cornering stiffness magnitudes in N rad⁻¹ (61595, 52095).
    max_steer : float
        Steering limit in rad (π/6).
    dt : float
        Sampling period in s (0.02).
    """

    env_id = "certnet/VehicleLateral-v0"
    max_episode_steps = 500

    def __init__(
        self,
        speed: float = 28.0,
        mass: float = 1670.0,
        inertia: float = 2100.0,
        a: float = 0.99,
        b: float = 1.7,
        c_front: float = 61595.0,
        c_rear: float = 52095.0,
        max_steer: float = np.pi / 6,
        dt: float = 0.02,
        *,
        input_saturation: str = "clip",
    ) -> None:
        import control

        for name, v in (("speed", speed), ("mass", mass), ("inertia", inertia), ("a", a),
                        ("b", b), ("c_front", c_front), ("c_rear", c_rear),
                        ("max_steer", max_steer)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0 (SI units, magnitudes), got {v!r}")
        cf, cr, U, m, Iz = c_front, c_rear, speed, mass, inertia
        A = np.array([
            [0, 1, 0, 0],
            [0, -2 * (cf + cr) / (m * U), 2 * (cf + cr) / m, 2 * (-cf * a + cr * b) / (m * U)],
            [0, 0, 0, 1],
            [0, -2 * (cf * a - cr * b) / (Iz * U), 2 * (cf * a - cr * b) / Iz,
             -2 * (cf * a**2 + cr * b**2) / (Iz * U)],
        ])
        B = np.array([[0.0], [2 * cf / m], [0.0], [2 * cf * a / Iz]])
        sys = control.ss(A, B, np.eye(4), np.zeros((4, 1)),
                         states=["e", "e_dot", "e_psi", "e_psi_dot"], inputs=["delta"],
                         outputs=["e", "e_dot", "e_psi", "e_psi_dot"], name="vehicle")
        super().__init__(sys, dt, u_min=-max_steer, u_max=max_steer,
                         Q=np.diag([1.0, 0.1, 1.0, 0.1]), R=[[1.0]], reset_bound=0.5,
                         input_saturation=input_saturation)
        self.state_units = ("m", "m/s", "rad", "rad/s")
        self.input_units = ("rad",)
