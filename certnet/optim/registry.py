"""The optimiser registry: one vocabulary for :func:`~certnet.optim.fit`, the trainers of
:mod:`certnet.train` and ``certnet train``.

============== ========================================================= ==============
name           optimiser                                                 learning rate
============== ========================================================= ==============
``mm``         :class:`~certnet.optim.MM`: majorisation–minimisation     none (refused)
``smm``        :class:`~certnet.optim.StochasticMM`: MM on a stream of   none (refused)
               mini-batches (overlapping batches, noise-discounted
               majoriser)
``autonewton`` :class:`~certnet.optim.AutoNewton`: Newton step along the none (refused)
               update curve
``rsgd``       :class:`~certnet.optim.RiemannianSGD`: fixed step on the  required
               spheres
``adam``       ``torch.optim.Adam`` (sphere points rescaled onto their   required
               spheres after every step; also trains a plain network)
============== ========================================================= ==============

Everything :func:`build_optimizer` returns is a ``torch.optim.Optimizer`` with one interface:
``step(closure)`` returns the loss before the step and accepts either closure convention
(:mod:`certnet.optim.closure`); ``restart()`` is called when the objective changes (a new
data set, and a new mini-batch unless the optimiser is built for a stream of them:
:attr:`OptimizerSpec.stream`); ``last_step`` says what the last step did (``"eta"``, ``"angles"``,
``"evaluations"``). Under ``torch.distributed`` each averages the loss and the gradient over the
processes (:mod:`certnet.optim.distributed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from certnet.geometry import dist, projx
from certnet.nn.frobenius import FrobeniusLinear
from certnet.optim.autonewton import AutoNewton
from certnet.optim.closure import (
    Closure,
    check_finite_gradient,
    check_finite_loss,
    evaluate,
)
from certnet.optim.curve import check_network, check_no_free_parameters
from certnet.optim.distributed import mean, process_group_of
from certnet.optim.mm import MM
from certnet.optim.rsgd import RiemannianSGD
from certnet.optim.stochastic import StochasticMM

__all__ = ["OptimizerSpec", "OPTIMIZERS", "check_optimizer", "build_optimizer"]


@dataclass(frozen=True)
class OptimizerSpec:
    """One entry of :data:`OPTIMIZERS`.

    Attributes
    ----------
    name : str
        Registry name.
    optimizer : type
        The class: ``optimizer(net, lr, process_group=…)`` when it takes a learning rate,
        ``optimizer(net, process_group=…)`` otherwise.
    example_lr : float or None
        ``None``: the optimiser chooses its own step size and ``lr`` is refused. Otherwise
        ``lr`` is required and this is the value error messages suggest.
    spheres_only : bool
        Needs a network of :class:`~certnet.nn.FrobeniusLinear` layers (it steps their points
        along geodesics).
    stream : bool
        Built for a stream of mini-batches of one data set: every ``step`` may get a new
        batch, and ``restart()`` is for a new data set only. Otherwise (MM, AutoNewton: their
        curvature memory describes one objective) the trainers call ``restart()`` at every new
        mini-batch.
    """

    name: str
    optimizer: type[torch.optim.Optimizer]
    example_lr: float | None
    spheres_only: bool
    stream: bool = False

    @property
    def learning_rate(self) -> bool:
        """Whether ``lr`` is required (True) or refused (False)."""
        return self.example_lr is not None


class _Adam(torch.optim.Adam):
    """``torch.optim.Adam`` behind the registry's interface (``build_optimizer("adam", …)``).

    Adam steps the stored tensors freely; the bound of a FrobeniusLinear layer still holds,
    since the parametrisation normalises in every forward (W = r X/‖X‖_F). After every step the
    stored point X of each sphere-mode layer is rescaled onto its sphere, X ↦ r X/‖X‖_F, which
    leaves the network's function unchanged and keeps a saved file valid. In a network with
    FrobeniusLinear layers, a trainable parameter outside them is refused (it would lose the
    bound); a network without any (a plain MLP) is trained as by ``torch.optim.Adam``.
    """

    def __init__(
        self,
        net: nn.Module,
        lr: float,
        *,
        process_group: torch.distributed.ProcessGroup | None = None,
    ) -> None:
        layers = [m for m in net.modules() if isinstance(m, FrobeniusLinear)]
        if layers:
            check_no_free_parameters(net, layers)
        group = process_group_of(net, process_group)
        super().__init__([p for p in net.parameters() if p.requires_grad], lr=lr)
        self._spheres = [m for m in layers if m.mode == "sphere" and m.point.requires_grad]
        self._process_group = group
        self._last: dict = {}

    @property
    def steps_done(self) -> int:
        """Number of completed calls to ``step``."""
        first = self.state.get(self.param_groups[0]["params"][0], {})
        return int(first.get("step", 0))

    @property
    def last_step(self) -> dict:
        """``"eta"`` (the learning rate), ``"angles"`` (rad turned by each sphere layer) and
        ``"evaluations"`` of the last step (empty before the first)."""
        return self._last

    def restart(self) -> None:
        """Nothing to forget: Adam's moment estimates average over mini-batches by design."""

    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One Adam step, then the sphere points back onto their spheres.

        ``closure``, return value and errors as for :meth:`RiemannianSGD.step` (without a
        closure, ``.grad`` is used).
        """
        params = list(self.param_groups[0]["params"])
        loss = None
        if closure is not None:
            ev = evaluate(closure, params)
            phi, *grads = mean(
                [torch.tensor(float(ev.loss.detach()), dtype=torch.float64)] + ev.grads,
                self._process_group,
            )
            check_finite_loss(float(phi), "at the current weights", self.steps_done)
            loss = torch.tensor(float(phi), dtype=ev.loss.dtype, device=ev.loss.device)
        else:
            params = [p for p in params if p.grad is not None]
            grads = mean([p.grad for p in params], self._process_group)
        check_finite_gradient(grads, self.steps_done)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        before = [lin.point.detach().clone() for lin in self._spheres]
        super().step()
        with torch.no_grad():
            for lin in self._spheres:
                lin.point.copy_(projx(lin.point, lin.radius))
        lr = self.param_groups[0]["lr"]
        self._last = {
            "eta": float(lr),
            "angles": [
                float(dist(b, lin.point.detach(), lin.radius)) / lin.radius
                for b, lin in zip(before, self._spheres, strict=True)
            ],
            "evaluations": int(closure is not None),
        }
        return loss


#: The optimisers by name (``example_lr`` None: no learning rate; see :class:`OptimizerSpec`).
OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec("mm", MM, None, True),
        OptimizerSpec("smm", StochasticMM, None, True, stream=True),
        OptimizerSpec("autonewton", AutoNewton, None, True),
        OptimizerSpec("rsgd", RiemannianSGD, 0.1, True, stream=True),
        OptimizerSpec("adam", _Adam, 1e-3, False, stream=True),
    )
}


def check_optimizer(name: str, lr: float | None = None) -> OptimizerSpec:
    """Validate an optimiser name and learning rate against the registry.

    Parameters
    ----------
    name : str
        A key of :data:`OPTIMIZERS`.
    lr : float, optional
        Learning rate: required by ``rsgd`` and ``adam``, refused by ``mm``, ``smm`` and
        ``autonewton`` (they choose their own step size).

    Returns
    -------
    OptimizerSpec

    Raises
    ------
    ValueError
        Unknown name (the message lists the registry); ``lr`` missing, superfluous, not
        positive or not finite.
    TypeError
        ``lr`` is not a number.

    Examples
    --------
    >>> check_optimizer("mm").learning_rate
    False
    """
    spec = OPTIMIZERS.get(name) if isinstance(name, str) else None
    if spec is None:
        names = ", ".join(f"{s.name!r}" for s in OPTIMIZERS.values())
        raise ValueError(
            f"optimizer must be one of {names}, got {name!r}; e.g. optimizer='mm' (no "
            "learning rate to choose)"
        )
    if not spec.learning_rate:
        if lr is not None:
            raise ValueError(
                f"optimizer {name!r} chooses its own step size and has no learning rate; "
                f"remove lr (got {lr!r})"
            )
        return spec
    example = f"e.g. lr={spec.example_lr:g}"
    if lr is None:
        raise ValueError(f"optimizer {name!r} needs a learning rate: pass lr, {example}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise TypeError(f"lr must be a number, got {lr!r}; {example}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}; {example}")
    return spec


def build_optimizer(
    name: str, net: nn.Module, *, lr: float | None = None, process_group=None
) -> torch.optim.Optimizer:
    """The registry's optimiser ``name`` for ``net``.

    Parameters
    ----------
    name : {"mm", "smm", "autonewton", "rsgd", "adam"}
        See :data:`OPTIMIZERS`.
    net : nn.Module
        The network (``mm``, ``smm``, ``autonewton`` and ``rsgd`` need
        :class:`~certnet.nn.FrobeniusLinear` layers, e.g. a ``NormalizedMLP``).
    lr : float, optional
        Learning rate of ``rsgd`` and ``adam`` (refused by the others).
    process_group : torch.distributed.ProcessGroup, optional
        Group to average over under ``torch.distributed`` (default: the default group).

    Returns
    -------
    torch.optim.Optimizer
        With ``step(closure)``, ``restart()`` and ``last_step`` (module docstring).

    Raises
    ------
    ValueError
        As :func:`check_optimizer`.
    TypeError
        ``net`` is not a module; a sphere optimiser for a network without FrobeniusLinear
        layers; a trainable parameter that is not on a Frobenius sphere.

    Examples
    --------
    >>> import certnet as cn
    >>> net = cn.nn.NormalizedMLP([2, 8, 1], seed=0)
    >>> type(build_optimizer("autonewton", net)).__name__
    'AutoNewton'
    """
    spec = check_optimizer(name, lr)
    check_network(net)
    if spec.spheres_only and not any(isinstance(m, FrobeniusLinear) for m in net.modules()):
        raise TypeError(
            f"optimizer {name!r} needs a network of FrobeniusLinear layers (e.g. a "
            f"NormalizedMLP): it steps their weights along Frobenius spheres; "
            f"{type(net).__name__} has none. Use optimizer 'adam' (with lr) for a plain network"
        )
    args = (net, lr) if spec.learning_rate else (net,)
    return spec.optimizer(*args, process_group=process_group)
