"""AutoNewton: Newton steps along the update curve, from nested autodiff (no Hessian)."""

from __future__ import annotations

import math

import torch
from torch import nn

from certnet.geometry import inner
from certnet.optim.closure import Closure
from certnet.optim.curve import Evaluated, SphereOptimizer
from certnet.optim.direction import Direction
from certnet.optim.mm import KAPPA_INIT, mm_step_size

__all__ = ["AutoNewton", "curve_derivatives", "ARMIJO", "MAX_HALVINGS"]

#: Sufficient-decrease constant c of the Armijo test φ(η) ≤ φ(0) + c η φ'(0).
ARMIJO = 1e-4
#: Halvings of η tried before the step is declared stationary (η = 0).
MAX_HALVINGS = 60


def curve_derivatives(
    opt: SphereOptimizer, closure: Closure
) -> tuple[float, float, float, list, list]:
    """φ(0), φ'(0) and φ''(0) along the update curve Γ(η), by nested autodiff.

    The curve's direction is the optimiser's search direction
    (:func:`certnet.optim.direction.search_direction`; it reads and updates the L-BFGS
    memory).

    φ(η) = loss(Γ(η)), Γ_k(η) = (Exp_{W_k}(η D_k), b_k + η d_k). By the chain rule

        φ'(0)  = ⟨∇loss, Γ'(0)⟩ = −G,
        φ''(0) = ⟨Γ'(0), ∇²loss Γ'(0)⟩ + ⟨∇loss, Γ''(0)⟩,   Γ_k''(0) = (−‖D_k‖²/r_k² W_k, 0),

    where ∇²loss Γ'(0) is one Hessian-vector product (reverse over reverse mode: the gradient
    of ⟨∇loss, v⟩ with v held fixed). No Hessian is formed.

    Returns
    -------
    (φ(0), φ'(0), φ''(0), D, d)
        Values as floats, and the curve's point and bias directions.
    """
    start, d2, direction = _derivatives(opt, closure)
    return start.phi, -direction.slope, d2, direction.dw, direction.db


def _derivatives(opt: SphereOptimizer, closure: Closure) -> tuple[Evaluated, float, Direction]:
    """φ(0) and the gradients, φ''(0), and the search direction (φ'(0) = −direction.slope).

    Under ``torch.distributed`` the gradient and the curvature term ⟨v, ∇²loss v⟩ are averaged
    over the processes (both are linear in the loss), so φ''(0) is that of the mean loss.
    """
    start = opt._loss_and_grad(closure, create_graph=True)
    layers = opt._layers
    direction = opt._direction(start.gw, start.gb)
    dw, db = direction.dw, direction.db
    vs = list(dw) + [d for d in db if d is not None]
    with torch.enable_grad():
        s = sum(inner(r, v) for r, v in zip(start.local, vs, strict=True))
        params = opt.param_groups[0]["params"]
        if s.requires_grad:
            hv = torch.autograd.grad(s, params, allow_unused=True)
        else:  # the loss is affine in the parameters
            hv = [None] * len(params)
    quad = sum(float(inner(v, h)) for v, h in zip(vs, hv, strict=True) if h is not None)
    (quad,) = opt._mean([torch.tensor(quad, dtype=torch.float64)])
    bend = sum(
        float(inner(d, d)) / lin.radius**2 * float(inner(r, lin.point.detach()))
        for lin, d, r in zip(layers, dw, start.euclidean, strict=False)
    )
    return start, float(quad) - bend, direction


class AutoNewton(SphereOptimizer):
    """Newton step along the update curve on the product of spheres. No learning rate.

    Each step computes φ(0), φ'(0) = −G and φ''(0) along the same update curve Γ(η) as
    :class:`MM` (L-BFGS direction in angle coordinates, unit total angle;
    :func:`curve_derivatives`), and proposes the Newton step η = G / φ''(0): the exact
    second-order model of the loss along the curve, where L-BFGS alone would guess the step
    from past curvature.

    Safeguard (documented in docs/optimisers.md and tested):

    1. if φ''(0) ≤ 0 or is not finite (negative curvature: Newton would point uphill or to
       infinity), the MM step η = log((1 + √(1 + 4G)) / 2) is proposed instead;
    2. η is capped so that no layer turns by more than π/2 rad;
    3. Armijo backtracking: η is halved until φ(η) ≤ φ(0) − 10⁻⁴ η G (at most 60 halvings;
       after that the weights stay and η = 0 is recorded). So the loss never increases.

    Parameters
    ----------
    net : nn.Module
        Network whose trainable parameters are all in :class:`~certnet.nn.FrobeniusLinear`
        layers with mode "sphere".
    direction : {"lbfgs", "gradient"}
        Search direction, as for :class:`MM`.
    process_group : torch.distributed.ProcessGroup, optional
        Group to average the loss, gradient, curvature and trial losses over, as for
        :class:`MM`.

    Raises
    ------
    TypeError
        A trainable parameter is not on a Frobenius sphere; ``net`` is not a module;
        ``process_group`` is not a process group.
    ValueError
        A layer uses mode "ball"; an unknown ``direction``.

    Notes
    -----
    No learning rate: a ``torch.optim.lr_scheduler`` on it raises a ``TypeError`` saying so.
    """

    def __init__(
        self,
        net: nn.Module,
        direction: str = "lbfgs",
        *,
        process_group: torch.distributed.ProcessGroup | None = None,
    ) -> None:
        super().__init__(net, {}, direction=direction, process_group=process_group)

    def step(self, closure: Closure) -> torch.Tensor:  # type: ignore[override]
        """One safeguarded Newton step.

        Parameters
        ----------
        closure : callable
            ``closure() -> loss`` (scalar tensor, twice differentiable) from the current
            weights, in either convention (as for :meth:`MM.step`). A ``backward()`` call in
            the closure is recorded and not run: AutoNewton differentiates the recorded
            tensors itself, keeping the graph for the Hessian-vector product.

        Returns
        -------
        Tensor
            The loss before the step (averaged over the processes).

        Raises
        ------
        FloatingPointError
            The loss or its gradient at the current weights is NaN/inf (weights unchanged).
        TypeError
            No closure, or the closure does not return a scalar tensor.
        """
        start, d2, direction = _derivatives(self, closure)
        phi0, g, dw, db = start.phi, direction.slope, direction.dw, direction.db
        depth = len(self._layers)
        source = "newton" if (math.isfinite(d2) and d2 > 0.0) else "mm"
        eta = g / d2 if source == "newton" else mm_step_size(g, KAPPA_INIT)
        eta = min(eta, self._eta_cap(direction))
        saved = self._save()
        angles, tries, accepted = [0.0] * depth, 0, 0.0
        if g > 0.0:
            for tries in range(1, MAX_HALVINGS + 1):  # noqa: B007 (tries is reported)
                trial_angles = self._move(saved, dw, db, eta)
                if self._value(closure) <= phi0 - ARMIJO * eta * g:
                    accepted, angles = eta, trial_angles
                    break
                eta /= 2.0
            else:
                self._restore(saved)
        self._record(accepted)
        st = self._state
        st["step"] = self.steps_done + 1
        st["last"] = {
            "eta": accepted,
            "G": g,
            "curvature": d2,
            "source": source,
            "angles": angles,
            "evaluations": 1 + tries,
        }
        return start.loss
