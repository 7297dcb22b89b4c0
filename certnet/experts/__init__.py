"""Experts to imitate and to compare against: LQR/dLQR, energy swing-up, linear MPC."""

from certnet.experts.lqr import LinearPolicy, lqr
from certnet.experts.mpc import LinearMPC, mpc
from certnet.experts.swingup import CartPoleSwingUp, EnergySwingUp, swing_up

__all__ = [
    "LinearPolicy",
    "lqr",
    "EnergySwingUp",
    "CartPoleSwingUp",
    "swing_up",
    "LinearMPC",
    "mpc",
]
