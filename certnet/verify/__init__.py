"""Certificates: Lipschitz bounds of networks and closed-loop stability / ℓ2-gain bounds.

Every result is a :class:`Certificate` whose ``check()`` re-verifies it in float64 from its
multipliers.
"""

from certnet.verify.certificate import SCHEMA, Certificate, checker_for, register_checker
from certnet.verify.closed_loop import closed_loop
from certnet.verify.gain import l2_gain
from certnet.verify.lipschitz import METHODS, lipschitz
from certnet.verify.loop_model import ClosedLoop, EquilibriumError
from certnet.verify.lower import lipschitz_lower_bound

__all__ = [
    "Certificate",
    "register_checker",
    "checker_for",
    "SCHEMA",
    "lipschitz",
    "METHODS",
    "lipschitz_lower_bound",
    "closed_loop",
    "l2_gain",
    "ClosedLoop",
    "EquilibriumError",
]
