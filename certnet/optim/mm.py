"""MM: majorisation–minimisation steps on the product of spheres, with no learning rate."""

from __future__ import annotations

import math

import torch
from torch import nn

from certnet.optim.curve import Closure, SphereOptimizer, unit_angle_direction

__all__ = ["MM", "majoriser", "mm_step_size"]

#: Curvature scale κ of the majoriser at the first step (AGD's value for normalised data).
KAPPA_INIT = 1.0
#: Halvings of the step tried before a step is declared stationary (η = 0).
MAX_TRIES = 60


def majoriser(eta: float, loss: float, g: float, kappa: float) -> float:
    """M_κ(η) = φ(0) − η G + (κ/2)(e^η − 1)², the model MM minimises.

    Parameters
    ----------
    eta : float
        Curve parameter η ≥ 0 (every layer turns by at most η/L rad).
    loss : float
        φ(0), the loss at the current weights.
    g : float
        G = −φ'(0) ≥ 0, the gradient summary (1/L) Σ r_k ‖(grad_W,k, grad_b,k)‖.
    kappa : float
        Curvature scale κ > 0 (κ = 1: AGD's functional majoriser for square loss on data
        normalised by the network's gain).
    """
    return loss - eta * g + 0.5 * kappa * math.expm1(eta) ** 2


def mm_step_size(g: float, kappa: float = 1.0) -> float:
    """Minimiser of :func:`majoriser`: η* = log((1 + √(1 + 4G/κ)) / 2).

    From dM/dη = −G + κ (e^η − 1) e^η = 0, a quadratic in e^η. With κ = 1 this is AGD's
    step size. η* ≥ 0, η* = 0 iff G = 0, and η* grows only like ½ log(G/κ).

    Examples
    --------
    >>> round(mm_step_size(0.5), 4)
    0.3119
    """
    if not (g >= 0 and math.isfinite(g)):
        raise ValueError(f"G must be finite and ≥ 0, got {g!r}")
    if not (kappa > 0 and math.isfinite(kappa)):
        raise ValueError(f"kappa must be finite and > 0, got {kappa!r}")
    return math.log((1.0 + math.sqrt(1.0 + 4.0 * g / kappa)) / 2.0)


class MM(SphereOptimizer):
    """Majorisation–minimisation optimiser for Frobenius-normalised networks. No learning rate.

    Each step evaluates the loss φ(0) and its Riemannian gradient, forms the unit-angle curve
    Γ(η) of :func:`certnet.optim.curve.unit_angle_direction` (slope φ'(0) = −G), minimises the
    majoriser M_κ(η) = φ(0) − ηG + (κ/2)(e^η − 1)² in closed form (:func:`mm_step_size`) and
    moves to Γ(η*) along geodesics, so ‖W_k‖_F = r_k and the Lipschitz bound hold exactly.

    Safeguard (monotone decrease): the step is accepted only if φ(η*) ≤ φ(0); otherwise κ is
    doubled (η* shrinks) and the step re-tried, up to 60 times (then the weights stay and η = 0
    is recorded). κ is estimated online: doubled whenever the accepted loss lies above M_κ(η*)
    (the model was too optimistic), halved whenever it lies below M_{κ/2}(η*) (a twice flatter
    model would also have held). κ starts at 1, AGD's value on normalised data. See
    docs/optimisers.md for what is proven and what is heuristic.

    Parameters
    ----------
    net : nn.Module
        Network whose trainable parameters are all in :class:`~certnet.nn.FrobeniusLinear`
        layers with mode "sphere".

    Raises
    ------
    TypeError
        A trainable parameter is not on a Frobenius sphere; ``net`` is not a module.
    ValueError
        A layer uses mode "ball".

    Examples
    --------
    >>> import torch, certnet as cn
    >>> net = cn.nn.NormalizedMLP([2, 16, 1], seed=0)
    >>> X = torch.randn(64, 2); Y = X[:, :1] * X[:, 1:]
    >>> opt = cn.optim.MM(net)
    >>> losses = [float(opt.step(lambda: ((net(X) - Y) ** 2).mean())) for _ in range(5)]
    >>> all(b <= a for a, b in zip(losses, losses[1:]))
    True
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__(net, {})

    def step(self, closure: Closure) -> torch.Tensor:  # type: ignore[override]
        """One MM step.

        Parameters
        ----------
        closure : callable
            ``closure() -> loss`` (scalar tensor) from the current weights; it must not call
            ``backward()`` and is called 1 + (number of trials) times.

        Returns
        -------
        Tensor
            The loss before the step (detached).

        Raises
        ------
        FloatingPointError
            The loss or its gradient at the current weights is NaN/inf (weights unchanged).
        TypeError
            No closure, or the closure does not return a scalar tensor.
        """
        loss, gw, gb, _ = self._loss_and_grad(closure)
        phi0 = float(loss.detach())
        st = self._state
        kappa = float(st.get("kappa", KAPPA_INIT))
        dw, db, g = unit_angle_direction(self._layers, gw, gb)
        saved = self._save()
        eta, angles, tries = 0.0, [0.0] * len(self._layers), 0
        if g > 0.0:
            for tries in range(1, MAX_TRIES + 1):  # noqa: B007 (tries is reported)
                trial = mm_step_size(g, kappa)
                trial_angles = self._move(saved, dw, db, trial)
                phi = self._value(closure)
                if phi <= phi0:
                    eta, angles = trial, trial_angles
                    if phi > majoriser(trial, phi0, g, kappa):
                        kappa *= 2.0
                    elif phi <= majoriser(trial, phi0, g, kappa / 2.0):
                        kappa /= 2.0
                    break
                kappa *= 2.0
            else:
                self._restore(saved)
        st["kappa"] = kappa
        st["step"] = self.steps_done + 1
        st["last"] = {"eta": eta, "G": g, "angles": angles, "evaluations": 1 + tries}
        return loss.detach()
