"""Whether a fit made progress, and if not, why: the status :func:`~certnet.optim.fit` reports.

A fit that leaves the loss where it was is not a result: it says nothing about the data, the
budget or the optimiser unless it says *why* it stopped. :func:`judge` reads what the fit
recorded and returns one of three named statuses with a sentence that explains it;
``fit`` stores both in its :class:`~certnet.optim.History` and warns (:class:`StallWarning`)
when the status is :data:`STALLED`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "IMPROVING",
    "CONVERGED",
    "STALLED",
    "STATUSES",
    "PROGRESS",
    "StallWarning",
    "Verdict",
    "judge",
]

#: The loss was still falling when the fit ended.
IMPROVING = "improving"
#: The loss fell, then stopped changing at working precision (more steps would not help).
CONVERGED = "converged"
#: The fit did not lower the loss by a relative PROGRESS: a warning, with the reason.
STALLED = "stalled"
STATUSES = (IMPROVING, CONVERGED, STALLED)
#: Smallest relative decrease of the training loss that counts as progress.
PROGRESS = 1e-3
#: An internal loss below this is too small for float32 steps to resolve well (the scale a
#: Lipschitz budget with an output scale of thousands leaves; see normalize_data).
TINY_LOSS = 1e-5


class StallWarning(RuntimeWarning):
    """A fit did not lower its loss (``History.status == "stalled"``); the message says why."""


@dataclass(frozen=True)
class Verdict:
    """A status of :data:`STATUSES` and the sentence that explains it."""

    status: str
    reason: str


def judge(
    initial: float,
    final: float,
    steps: Sequence[dict],
    *,
    objective: float,
    dtype: torch.dtype,
    lr: float | None,
    budget: float | None,
) -> Verdict:
    """The status of a fit from its losses and the optimiser's ``last_step`` records.

    Parameters
    ----------
    initial, final : float
        Training MSE on all the data before and after the fit (user units).
    steps : sequence of dict
        ``opt.last_step`` after every step (``"eta"``; the MM family adds ``"resolved"``:
        whether the step's decrease exceeded the rounding of the loss).
    objective : float
        The internal loss the optimiser saw at the start (½ MSE / s_out² / d_L).
    dtype : torch.dtype
        Dtype of the network and the data.
    lr : float or None
        The learning rate (``None``: a learning-rate-free optimiser).
    budget : float or None
        The network's Lipschitz budget, if any.

    Returns
    -------
    Verdict
    """
    relative = (initial - final) / initial if initial > 0.0 else 0.0
    resolved = [s["resolved"] for s in steps if "resolved" in s]
    if relative >= PROGRESS:
        window = max(5, len(steps) // 10)
        if len(resolved) == len(steps) and len(steps) >= window and not any(resolved[-window:]):
            return Verdict(
                CONVERGED,
                f"the loss fell by {relative:.3g} (relative) and its last {window} steps no "
                f"longer changed it beyond the rounding of {_name(dtype)}: converged to working "
                "precision",
            )
        return Verdict(IMPROVING, f"the loss fell by {relative:.3g} (relative)")
    head = (
        f"the fit made no progress: the training MSE went from {initial:.6g} to {final:.6g} "
        f"in {len(steps)} steps (relative decrease {relative:.2g} < {PROGRESS:g})"
    )
    causes = []
    if steps and all(s["eta"] == 0.0 for s in steps):
        causes.append(
            "every step was refused: no step along the search direction lowered the loss (a "
            "stationary point of the loss on the spheres, or a loss that is not smooth there)"
        )
    elif resolved and not any(resolved):
        causes.append(f"the steps changed the loss by less than the rounding of {_name(dtype)}")
    if objective < TINY_LOSS:
        causes.append(
            f"the internal loss is {objective:.3g}: at that scale {_name(dtype)} cannot resolve "
            "the steps; fit with normalize=True (with a Lipschitz budget it scales the targets "
            "to unit rms and keeps the budget in the radii) or in float64"
        )
    if lr is not None:
        causes.append(f"lr={lr:g} may be too small or too large for this problem")
    if budget is not None:
        causes.append(
            f"the Lipschitz budget {budget:g} may be too tight for these targets (no network "
            "within it fits them better than the start)"
        )
    if not causes:
        causes.append("the optimiser took steps that did not reduce the loss over the data")
    return Verdict(STALLED, head + "; " + "; ".join(causes))


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
