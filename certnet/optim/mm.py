"""MM: majorisation–minimisation steps on the product of spheres, with no learning rate."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from certnet.optim.closure import Closure
from certnet.optim.curve import SphereOptimizer
from certnet.optim.direction import Direction

__all__ = ["MM", "Found", "majoriser", "mm_step_size", "fitted_kappa", "RESOLVED"]

#: Curvature scale κ of the majoriser at the first step (AGD's value for normalised data).
KAPPA_INIT = 1.0
#: Halvings of the step tried before a step is declared stationary (η = 0).
MAX_TRIES = 60
#: A decrease of the loss is resolved when it exceeds RESOLVED · ε(dtype) · |φ(0)|: a few
#: dozen ulps of the loss, above the rounding of a mean of squares (Note [resolution]).
RESOLVED = 64.0


class Found(NamedTuple):
    """What one MM search found.

    Attributes
    ----------
    eta : float
        The step taken (0: none).
    angles : list of float
        Angle turned by each layer, rad.
    tries : int
        Trial evaluations (forward only).
    slopes : int
        Gradient evaluations at unresolved trials (Note [resolution]).
    decrease : float
        φ(0) − φ(η) ≥ 0 (estimated from the slopes when the values do not resolve it).
    resolved : bool
        Whether the decrease exceeds the rounding of φ (``RESOLVED`` ε |φ(0)|).
    """

    eta: float
    angles: list[float]
    tries: int
    slopes: int
    decrease: float
    resolved: bool


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

    Each step evaluates the loss φ(0) and its Riemannian gradient, forms the search direction
    of :func:`certnet.optim.direction.search_direction` (L-BFGS in angle coordinates,
    scaled to unit total angle, slope φ'(0) = −G), minimises the majoriser
    M_κ(η) = φ(0) − ηG + (κ/2)(e^η − 1)² in closed form (:func:`mm_step_size`) and moves to
    Γ(η*) along geodesics, so ‖W_k‖_F = r_k and the Lipschitz bound hold exactly.

    The curvature scale κ is *fitted*, not fixed: every trial η gives the loss φ(η), and

        κ̂ = 2 (φ(η) − φ(0) + ηG) / (e^η − 1)²

    is the κ whose majoriser passes exactly through the observed loss. Per step:

    1. trial η₁ = η*(κ) with κ from the previous step (1 at the first: AGD's value on data
       normalised by the network's gain), raised if needed to the smallest step whose
       predicted decrease η₁G is above the rounding of the loss (Note [resolution]), capped so
       that no layer turns by more than π/2;
    2. if φ(η₁) > φ(0) the trial is refused, κ ← max(2κ, κ̂) and the trial repeated (at most
       60 times; then the weights are restored and η = 0 is recorded). So the loss never
       increases (**monotone safeguard**);
    3. otherwise, if the fitted majoriser's minimiser η₂ = η*(κ̂) (or 2η₁ when κ̂ ≤ 0: the loss
       fell faster than linearly) differs from η₁ by more than a factor 2, it is tried once
       and the lower of the two losses is kept;
    4. the next step starts from the κ̂ of the kept point (κ/2 if κ̂ ≤ 0).

    A trial whose loss differs from φ(0) by less than the rounding of the loss
    (``RESOLVED`` · ε · |φ(0)|) is judged instead by the trapezoid estimate
    φ(η) − φ(0) ≈ η(φ'(0) + φ'(η))/2, from one gradient at the trial (Note [resolution]); the
    loss then never increases by more than its rounding. ``last_step`` records ``"eta"``,
    ``"G"``, ``"pairs"``, ``"angles"``, ``"evaluations"`` (closure calls), ``"gradients"``
    (those with a gradient), ``"decrease"``
    (φ(0) − φ(η)) and ``"resolved"`` (whether that decrease is above the rounding). See
    docs/optimisers.md for what is proven and what is heuristic.

    Parameters
    ----------
    net : nn.Module
        Network whose trainable parameters are all in :class:`~certnet.nn.FrobeniusLinear`
        layers with mode "sphere".
    direction : {"lbfgs", "gradient"}
        Search direction: Riemannian L-BFGS (default) or steepest descent, both in angle
        coordinates (:mod:`certnet.optim.direction`). Call :meth:`restart` when the
        objective changes between steps.
    process_group : torch.distributed.ProcessGroup, optional
        Under ``torch.distributed`` the loss, gradient and trial losses are averaged over
        this group, so every process takes the same step (:mod:`certnet.optim.distributed`).
        Default: the group of a ``DistributedDataParallel`` ``net``, else the default group
        whenever ``torch.distributed`` is initialised.

    Raises
    ------
    TypeError
        A trainable parameter is not on a Frobenius sphere; ``net`` is not a module;
        ``process_group`` is not a process group.
    ValueError
        A layer uses mode "ball"; an unknown ``direction``.

    Notes
    -----
    MM has no learning rate, so ``torch.optim.lr_scheduler`` has nothing to schedule:
    building a scheduler on it raises a ``TypeError`` that says so (docs/optimisers.md).

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

    def __init__(
        self,
        net: nn.Module,
        direction: str = "lbfgs",
        *,
        process_group: torch.distributed.ProcessGroup | None = None,
    ) -> None:
        super().__init__(net, {}, direction=direction, process_group=process_group)

    def step(self, closure: Closure) -> torch.Tensor:  # type: ignore[override]
        """One MM step.

        Parameters
        ----------
        closure : callable
            ``closure() -> loss`` (scalar tensor) from the current weights, called
            1 + (number of trials) times. Either convention: it returns the loss and MM
            differentiates it, or (as for ``torch.optim.LBFGS``) it calls
            ``opt.zero_grad()`` and ``loss.backward()`` first and MM reads ``.grad``
            (:mod:`certnet.optim.closure`). Trials run under ``torch.no_grad()``, where a
            ``backward()`` call is skipped.

        Returns
        -------
        Tensor
            The loss before the step (detached; averaged over the processes).

        Raises
        ------
        FloatingPointError
            The loss or its gradient at the current weights is NaN/inf (weights unchanged).
        TypeError
            No closure, or the closure does not return a scalar tensor.
        """
        start = self._loss_and_grad(closure)
        d = self._direction(start.gw, start.gb)
        found = self._search(
            lambda: self._value(closure),
            start.phi,
            d,
            start.loss.dtype,
            slope=lambda saved, eta: self._slope(closure, saved, d, eta),
        )
        self._record(found.eta)
        self._finish(
            found, d, evaluations=1 + found.tries + found.slopes, gradients=1 + found.slopes
        )
        return start.loss

    def _search(
        self,
        value: Callable[[], float],
        phi0: float,
        d: Direction,
        dtype: torch.dtype,
        *,
        slope: Callable[[list[torch.Tensor], float], float],
    ) -> Found:
        """The MM step along ``d`` from φ(0) = ``phi0`` (steps 1–4 of the class notes).

        ``value()`` is φ at the current weights, a loss of ``dtype``; ``slope(saved, η)`` is
        φ'(η) there (a gradient evaluation; ``saved`` are the start weights). Leaves the
        weights at Γ(η) for the returned η (at the start for η = 0) and the next κ in the
        state.
        """
        st = self._state
        kappa = float(st.get("kappa", KAPPA_INIT))
        g, cap = d.slope, self._eta_cap(d)
        # Note [resolution]: a trial whose change of the loss is within the rounding of φ
        # (RESOLVED ε |φ(0)|) cannot be told from no change by its value; its κ̂ ≈ 2G/η would
        # double κ at every step and the steps would shrink below resolution for good. So
        # (1) until a trial is refused, η is raised to the smallest step whose predicted
        # decrease ηG is resolved, and (2) an unresolved trial is judged by the trapezoid
        # estimate φ(η) − φ(0) ≈ η (φ'(0) + φ'(η)) / 2 from the slope at the trial (Hager &
        # Zhang's approximate Wolfe test), whose rounding is that of the gradients.
        tol = RESOLVED * torch.finfo(dtype).eps * abs(phi0)
        resolvable = 2.0 * tol / g if g > 0.0 else math.inf
        saved = self._save()
        best: tuple[float, float, float] | None = None  # (φ, η, κ̂) of the best accepted trial
        tries, slopes, refused = 0, 0, False

        def trial(eta: float) -> tuple[float, float]:
            nonlocal tries, slopes
            tries += 1
            self._move(saved, d.dw, d.db, eta)
            phi = value()
            if abs(phi - phi0) <= tol:
                slopes += 1
                phi = phi0 + eta * (slope(saved, eta) - g) / 2.0
            return phi, fitted_kappa(eta, phi, phi0, g)

        if g > 0.0:
            for _ in range(MAX_TRIES):
                if not math.isfinite(kappa):  # no step size left to try: stationary along Γ
                    break
                eta = mm_step_size(g, kappa)
                eta = min(eta if refused else max(eta, resolvable), cap)
                phi, fit = trial(eta)
                if phi <= phi0:
                    best = (phi, eta, fit)
                    if 0.0 < fit < math.inf:
                        refined = min(mm_step_size(g, fit), cap)
                    else:  # κ̂ ≤ 0: the loss fell faster than linearly (κ̂ = inf: η underflowed)
                        refined = eta if fit == math.inf else min(2.0 * eta, cap)
                    if not 0.5 * eta <= refined <= 2.0 * eta:
                        phi2, fit2 = trial(refined)
                        if phi2 < phi:
                            best = (phi2, refined, fit2)
                    break
                refused = True
                kappa = max(2.0 * kappa, fit) if math.isfinite(fit) else 2.0 * kappa
        angles = [0.0] * len(self._layers)
        decrease = 0.0
        if best is None:
            self._restore(saved)
            eta = 0.0
        else:
            phi, eta, fit = best
            angles = self._move(saved, d.dw, d.db, eta)
            kappa = fit if 0.0 < fit < math.inf else kappa / 2.0
            decrease = phi0 - phi
        st["kappa"] = kappa if math.isfinite(kappa) else KAPPA_INIT
        return Found(eta, angles, tries, slopes, decrease, decrease > tol)

    def _finish(self, found: Found, d: Direction, **extra) -> None:
        """Count the step and record what it did in ``last_step``."""
        st = self._state
        st["step"] = self.steps_done + 1
        st["last"] = {
            "eta": found.eta,
            "G": d.slope,
            "pairs": d.pairs,
            "angles": found.angles,
            "decrease": found.decrease,
            "resolved": found.resolved,
            **extra,
        }


def fitted_kappa(eta: float, phi: float, phi0: float, g: float) -> float:
    """κ̂ = 2 (φ(η) − φ(0) + ηG) / (e^η − 1)²: the κ with M_κ(η) = φ(η) (``inf`` if φ is).

    Examples
    --------
    >>> eta = 0.3; k = fitted_kappa(eta, majoriser(eta, 1.0, 0.5, 4.0), 1.0, 0.5)
    >>> round(k, 12)
    4.0
    """
    bend = math.expm1(eta) ** 2
    if not math.isfinite(phi) or bend == 0.0:
        return math.inf
    return 2.0 * (phi - phi0 + eta * g) / bend
