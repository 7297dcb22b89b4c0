"""MM: majorisation–minimisation steps on the product of spheres, with no learning rate."""

from __future__ import annotations

import math

import torch
from torch import nn

from certnet.optim.closure import Closure
from certnet.optim.curve import SphereOptimizer

__all__ = ["MM", "majoriser", "mm_step_size", "fitted_kappa"]

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

    Each step evaluates the loss φ(0) and its Riemannian gradient, forms the search direction
    of :func:`certnet.optim.direction.search_direction` (L-BFGS in angle coordinates,
    scaled to unit total angle, slope φ'(0) = −G), minimises the majoriser
    M_κ(η) = φ(0) − ηG + (κ/2)(e^η − 1)² in closed form (:func:`mm_step_size`) and moves to
    Γ(η*) along geodesics, so ‖W_k‖_F = r_k and the Lipschitz bound hold exactly.

    The curvature scale κ is *fitted*, not fixed: every trial η gives the loss φ(η), and

        κ̂ = 2 (φ(η) − φ(0) + ηG) / (e^η − 1)²

    is the κ whose majoriser passes exactly through the observed loss. Per step:

    1. trial η₁ = η*(κ) with κ from the previous step (1 at the first: AGD's value on data
       normalised by the network's gain), capped so that no layer turns by more than π/2;
    2. if φ(η₁) > φ(0) the trial is refused, κ ← max(2κ, κ̂) and the trial repeated (at most
       60 times; then the weights are restored and η = 0 is recorded). So the loss never
       increases (**monotone safeguard**);
    3. otherwise, if the fitted majoriser's minimiser η₂ = η*(κ̂) (or 2η₁ when κ̂ ≤ 0: the loss
       fell faster than linearly) differs from η₁ by more than a factor 2, it is tried once
       and the lower of the two losses is kept;
    4. the next step starts from the κ̂ of the kept point (κ/2 if κ̂ ≤ 0).

    See docs/optimisers.md for what is proven and what is heuristic.

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
        phi0 = start.phi
        st = self._state
        kappa = float(st.get("kappa", KAPPA_INIT))
        d = self._direction(start.gw, start.gb)
        g, cap = d.slope, self._eta_cap(d)
        saved = self._save()
        best: tuple[float, float, float] | None = None  # (φ, η, κ̂) of the best accepted trial
        tries = 0

        def trial(eta: float) -> tuple[float, float]:
            nonlocal tries
            tries += 1
            self._move(saved, d.dw, d.db, eta)
            phi = self._value(closure)
            return phi, fitted_kappa(eta, phi, phi0, g)

        if g > 0.0:
            for _ in range(MAX_TRIES):
                if not math.isfinite(kappa):  # no step size left to try: stationary along Γ
                    break
                eta = min(mm_step_size(g, kappa), cap)
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
                kappa = max(2.0 * kappa, fit) if math.isfinite(fit) else 2.0 * kappa
        angles = [0.0] * len(self._layers)
        if best is None:
            self._restore(saved)
            eta = 0.0
        else:
            _, eta, fit = best
            angles = self._move(saved, d.dw, d.db, eta)
            kappa = fit if 0.0 < fit < math.inf else kappa / 2.0
        self._record(eta)
        st["kappa"] = kappa if math.isfinite(kappa) else KAPPA_INIT
        st["step"] = self.steps_done + 1
        st["last"] = {
            "eta": eta,
            "G": g,
            "pairs": d.pairs,
            "angles": angles,
            "evaluations": 1 + tries,
        }
        return start.loss


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
