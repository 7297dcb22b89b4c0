"""Experts to imitate and to compare against: LQR/dLQR, energy swing-up, linear MPC."""

from certnet.experts.lqr import LinearPolicy, lqr

__all__ = ["LinearPolicy", "lqr"]
