"""The update curve on the product of spheres that every certnet optimiser walks along.

All three optimisers move the parameters of a network's :class:`~certnet.nn.FrobeniusLinear`
layers along a one-parameter curve

    Γ(η) = ( Exp_{W_1}(η D_1), …, Exp_{W_L}(η D_L);  b_1 + η d_1, …, b_L + η d_L ),

where W_k ∈ S_{r_k} is the stored point of layer k (``layer.point``), D_k a tangent vector at W_k
and d_k the bias direction. Because Exp keeps ‖W_k‖_F = r_k for every η, the Lipschitz bound
∏ r_k holds at every point of the curve. The class :class:`SphereOptimizer` holds the shared
mechanism: find the layers, refuse parameters that are not on a sphere, evaluate the closure and
its Riemannian gradient (in either closure convention, :mod:`certnet.optim.closure`; averaged
over the processes under ``torch.distributed``, :mod:`certnet.optim.distributed`), move to Γ(η),
and restore the last good weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from certnet.geometry import expmap, inner, norm, proju, projx
from certnet.nn.frobenius import FrobeniusLinear
from certnet.optim.closure import (
    Closure,
    check_finite_gradient,
    check_finite_loss,
    evaluate,
    loss_value,
)
from certnet.optim.direction import DIRECTIONS, Direction, record_step, search_direction
from certnet.optim.distributed import mean, process_group_of

__all__ = [
    "SphereOptimizer",
    "Evaluated",
    "find_layers",
    "check_network",
    "check_no_free_parameters",
    "unit_angle_direction",
]


def find_layers(net: nn.Module) -> list[FrobeniusLinear]:
    """The :class:`FrobeniusLinear` layers of ``net``, in module order.

    Parameters
    ----------
    net : nn.Module
        A network whose trainable parameters are all points or biases of ``FrobeniusLinear``
        layers in mode ``"sphere"`` (e.g. :class:`certnet.nn.NormalizedMLP`).

    Raises
    ------
    TypeError
        ``net`` is not a module, has no ``FrobeniusLinear`` layer, or has a trainable parameter
        that is not on a Frobenius sphere (stepping it freely would lose the Lipschitz bound).
    ValueError
        A layer is in mode ``"ball"``.
    """
    check_network(net)
    layers = [m for m in net.modules() if isinstance(m, FrobeniusLinear)]
    if not layers:
        raise TypeError(
            f"{type(net).__name__} has no FrobeniusLinear layer; build the network with "
            "certnet.nn.NormalizedMLP or certnet.nn.FrobeniusLinear"
        )
    check_no_free_parameters(net, layers)
    for k, lin in enumerate(layers):
        if lin.mode != "sphere":
            raise ValueError(
                f"layer {k} has mode {lin.mode!r}; MM, AutoNewton and RiemannianSGD step along "
                "geodesics of the sphere and need mode='sphere'. For mode='ball' use a "
                "Euclidean optimiser (e.g. torch.optim.Adam): the parametrisation keeps "
                "‖W‖_F ≤ r for any value of the stored tensor"
            )
    return layers


def check_network(net) -> None:
    """``TypeError`` unless ``net`` is an ``nn.Module`` (the optimisers are built from one)."""
    if not isinstance(net, nn.Module):
        raise TypeError(
            f"expected the network (an nn.Module, e.g. certnet.nn.NormalizedMLP), got "
            f"{type(net).__name__}; certnet's optimisers are built from the network, not from "
            "a parameter list"
        )


def check_no_free_parameters(net: nn.Module, layers: Sequence[FrobeniusLinear]) -> None:
    """Refuse a trainable parameter of ``net`` that is neither a point nor a bias of ``layers``.

    Raises
    ------
    TypeError
        Such a parameter exists (the message names it and the two fixes).
    """
    known = {id(lin.point) for lin in layers}
    known |= {id(lin.bias) for lin in layers if lin.bias is not None}
    for name, p in net.named_parameters():
        if p.requires_grad and id(p) not in known:
            raise TypeError(
                f"parameter {name!r} (shape {tuple(p.shape)}) is not on a Frobenius sphere; "
                "a free step would lose the Lipschitz bound. Use FrobeniusLinear for it, or "
                "freeze it with requires_grad_(False)"
            )


def unit_angle_direction(
    layers: Sequence[FrobeniusLinear],
    gw: Sequence[torch.Tensor],
    gb: Sequence[torch.Tensor | None],
) -> tuple[list[torch.Tensor], list[torch.Tensor | None], float]:
    """Direction of the MM / AutoNewton curve and its slope G.

    With n_k = √(‖grad_W,k‖² + ‖grad_b,k‖²) (grad_W the Riemannian gradient):

        D_k = −(r_k / L) grad_W,k / n_k,   d_k = −(r_k / L) grad_b,k / n_k,

    so layer k turns by at most η/L rad at curve parameter η, and the slope of the loss along
    the curve at η = 0 is φ'(0) = −G with G = (1/L) Σ_k r_k n_k. This is AGD's relative update
    applied to the augmented matrix [W_k | b_k] (see docs/optimisers.md).

    Returns
    -------
    (D, d, G)
        Tangent directions of the points, bias directions (``None`` where a layer has no bias)
        and G ≥ 0.
    """
    depth = len(layers)
    dw, db, total = [], [], 0.0
    for lin, g, b in zip(layers, gw, gb, strict=True):
        sq = float(inner(g, g)) + (float(inner(b, b)) if b is not None else 0.0)
        n = math.sqrt(sq)
        scale = 0.0 if n == 0.0 else -lin.radius / (depth * n)
        dw.append(g * scale)
        db.append(None if b is None else b * scale)
        total += lin.radius * n
    return dw, db, total / depth


class Evaluated(NamedTuple):
    """The loss and gradients at the start of a step, averaged over the processes.

    Attributes
    ----------
    loss : Tensor
        φ(0) as a 0-d tensor of the closure's dtype (what ``step`` returns).
    phi : float
        φ(0) as a float (the value the step's decisions compare against).
    gw : list of Tensor
        Riemannian gradients of the points.
    gb : list of Tensor or None
        Gradients of the biases (``None`` where a layer has no trainable bias).
    euclidean : list of Tensor
        Euclidean gradients of all parameters, points then biases (detached).
    local : list of Tensor
        This process's gradients, in the same order, with their graph when the evaluation
        was asked for one (AutoNewton's Hessian-vector product).
    """

    loss: torch.Tensor
    phi: float
    gw: list[torch.Tensor]
    gb: list[torch.Tensor | None]
    euclidean: list[torch.Tensor]
    local: list[torch.Tensor]


class _ParamGroup(dict):
    """A parameter group that explains the missing learning rate instead of a ``KeyError``.

    Note [no learning rate]: ``torch.optim.lr_scheduler`` reads and rewrites ``group["lr"]``.
    MM and AutoNewton choose their step size at every step, so a schedule would have nothing
    to act on; accepting it as a silent no-op would let the user believe it changed something.
    Reading ``group["lr"]`` therefore raises a ``TypeError`` that says so. The groups of
    RiemannianSGD hold ``"lr"``, so schedulers work there as in torch.
    """

    def __missing__(self, key):
        if key == "lr":
            raise TypeError(
                f"{self.owner} has no learning rate: it chooses its step size itself at every "
                "step, so torch.optim.lr_scheduler (or anything reading param_groups[i]['lr']) "
                "has nothing to act on. Drop the scheduler; for a scheduled step size use "
                "certnet.optim.RiemannianSGD(net, lr) (optimizer 'rsgd') or optimizer 'adam'"
            )
        raise KeyError(key)


class SphereOptimizer(torch.optim.Optimizer):
    """Shared mechanism of the certnet optimisers (not used directly).

    Parameters
    ----------
    net : nn.Module
        Network; see :func:`find_layers`.
    defaults : dict
        As for ``torch.optim.Optimizer``.
    direction : {"lbfgs", "gradient"}
        Search direction of :meth:`_direction` (see :mod:`certnet.optim.direction`).
    process_group : torch.distributed.ProcessGroup, optional
        Group to average the loss and gradients over (see :mod:`certnet.optim.distributed`);
        default: the group of a ``DistributedDataParallel`` ``net``, else the default group
        whenever ``torch.distributed`` is initialised.
    """

    def __init__(
        self,
        net: nn.Module,
        defaults: dict,
        direction: str = "lbfgs",
        *,
        process_group: torch.distributed.ProcessGroup | None = None,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(
                f"unknown direction {direction!r}; choose one of: {', '.join(DIRECTIONS)}"
            )
        self.direction = direction
        group = process_group_of(net, process_group)
        layers = []
        for k, lin in enumerate(find_layers(net)):
            if lin.point.requires_grad:
                layers.append(lin)
            elif lin.bias is not None and lin.bias.requires_grad:
                raise ValueError(
                    f"layer {k} has a frozen weight but a trainable bias; freeze both "
                    "(requires_grad_(False) on the layer) or neither"
                )
        if not layers:
            raise ValueError("every layer is frozen; there is nothing to optimise")
        points = [lin.point for lin in layers]
        biases = [lin.bias for lin in layers if lin.bias is not None and lin.bias.requires_grad]
        super().__init__([self._new_group(params=points + biases)], defaults)
        self._layers = layers
        self._process_group = group
        self._calls_backward = False  # the convention of this step's closure (trials need it)

    def _new_group(self, *args, **kwargs) -> _ParamGroup:
        group = _ParamGroup(*args, **kwargs)
        group.owner = type(self).__name__
        return group

    def __setstate__(self, state: dict) -> None:
        # load_state_dict (and unpickling) rebuild the groups as plain dicts.
        super().__setstate__(state)
        self.param_groups = [self._new_group(g) for g in self.param_groups]

    # ------------------------------------------------------------------ state
    @property
    def _state(self) -> dict:
        """Optimiser-wide state, stored under the first point (so state_dict carries it)."""
        return self.state[self._layers[0].point]

    @property
    def steps_done(self) -> int:
        """Number of completed calls to ``step``."""
        return int(self._state.get("step", 0))

    @property
    def last_step(self) -> dict:
        """What the last ``step`` did (empty before the first): ``"eta"`` (step size),
        ``"angles"`` (rad turned by each layer), ``"evaluations"`` (closure calls), and
        optimiser-specific entries."""
        return self._state.get("last", {})

    def restart(self) -> None:
        """Forget the L-BFGS memory: the next step is a steepest-descent step.

        Call it when the objective changes between steps (new data): the curvature pairs
        describe one objective.
        """
        self._state.pop("memory", None)

    def _direction(self, gw, gb, *, pair_gradient=None) -> Direction:
        """The search direction from the gradients (reads the L-BFGS memory; ``pair_gradient``
        as for :func:`~certnet.optim.direction.search_direction`)."""
        memory = self._state.setdefault("memory", {})
        return search_direction(
            self._layers, gw, gb, memory, self.direction, pair_gradient=pair_gradient
        )

    def _record(self, eta: float, *, gradient=None) -> None:
        """Tell the L-BFGS memory which step along the last direction was taken (``gradient``
        as for :func:`~certnet.optim.direction.record_step`)."""
        record_step(self._state.setdefault("memory", {}), eta, gradient=gradient)

    @staticmethod
    def _eta_cap(d: Direction) -> float:
        """Largest η at which no layer turns by more than π/2 rad along ``d``."""
        return math.inf if d.turn == 0.0 else (math.pi / 2.0) / d.turn

    def _bias(self, lin: FrobeniusLinear) -> torch.Tensor | None:
        return lin.bias if lin.bias is not None and lin.bias.requires_grad else None

    # ------------------------------------------------------------------ evaluation
    def _mean(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Means over the processes (the tensors themselves in one process)."""
        return mean(tensors, self._process_group)

    def _loss_and_grad(self, closure: Closure, *, create_graph: bool = False) -> Evaluated:
        """Evaluate the closure and its gradient, averaged over the processes."""
        if closure is None:
            raise TypeError(
                "step needs a closure: def closure(): return loss_fn(net(X), Y) (or, as for "
                "torch.optim.LBFGS, one that calls opt.zero_grad() and loss.backward() "
                "before returning the loss)"
            )
        self._project_points()
        params = self.param_groups[0]["params"]
        ev = evaluate(closure, params, create_graph=create_graph)
        self._calls_backward = ev.calls_backward
        phi, *euclidean = self._mean(
            [torch.tensor(float(ev.loss.detach()), dtype=torch.float64)]
            + [g.detach() for g in ev.grads]
        )
        phi = float(phi)
        check_finite_loss(phi, "at the current weights", self.steps_done)
        check_finite_gradient(euclidean, self.steps_done, phi)
        depth = len(self._layers)
        gw = [
            proju(lin.point.detach(), g, lin.radius)
            for lin, g in zip(self._layers, euclidean[:depth], strict=True)
        ]
        it = iter(euclidean[depth:])
        gb = [None if self._bias(lin) is None else next(it) for lin in self._layers]
        loss = torch.tensor(phi, dtype=ev.loss.dtype, device=ev.loss.device)
        return Evaluated(loss, phi, gw, gb, euclidean, ev.grads)

    @torch.no_grad()
    def _project_points(self) -> None:
        # W ↦ r W/‖W‖_F changes neither the network's function (the parametrisation normalises
        # in every forward) nor the bound; it only removes round-off drift off the sphere.
        for lin in self._layers:
            lin.point.copy_(projx(lin.point, lin.radius))

    # ------------------------------------------------------------------ moving along Γ
    @torch.no_grad()
    def _save(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.param_groups[0]["params"]]

    @torch.no_grad()
    def _restore(self, saved: Sequence[torch.Tensor]) -> None:
        for p, s in zip(self.param_groups[0]["params"], saved, strict=True):
            p.copy_(s)

    @torch.no_grad()
    def _move(
        self,
        saved: Sequence[torch.Tensor],
        dw: Sequence[torch.Tensor],
        db: Sequence[torch.Tensor | None],
        eta: float,
    ) -> list[float]:
        """Set the parameters to Γ(η) from the saved start; returns the angle per layer (rad).

        The tensors are updated in place so that the optimiser and the parametrisation keep
        tracking the same ``nn.Parameter`` objects.
        """
        self._restore(saved)
        angles = []
        for lin, d, b in zip(self._layers, dw, db, strict=True):
            r = lin.radius
            new = expmap(lin.point, eta * d, r)
            if not bool(torch.isfinite(new).all()):
                self._restore(saved)
                raise FloatingPointError(
                    f"the step at step {self.steps_done} overflowed (step size {eta:g}, "
                    f"direction norm {float(norm(d)):g}); the weights were restored (the last "
                    "good weights are kept). Lower the learning rate"
                )
            lin.point.copy_(projx(new, r))
            angles.append(abs(eta) * float(norm(d)) / r)
            if b is not None:
                lin.bias.add_(b, alpha=eta)
        return angles

    def _slope(self, closure: Closure, saved: Sequence[torch.Tensor], d: Direction, eta: float):
        """φ'(η) = ⟨∇loss(Γ(η)), Γ'(η)⟩ at the current weights Γ(η) (one gradient evaluation,
        averaged over the processes), with Γ_k'(η) = cos θ_k D_k − (‖D_k‖/r_k) sin θ_k W_k,
        θ_k = η‖D_k‖/r_k, for the points (W_k the start) and d_k for the biases."""
        ev = evaluate(closure, self.param_groups[0]["params"])
        grads = self._mean([g.detach() for g in ev.grads])
        slope = 0.0
        for lin, g, w, dw in zip(self._layers, grads, saved, d.dw, strict=False):
            speed = float(norm(dw)) / lin.radius
            theta = eta * speed
            slope += math.cos(theta) * float(inner(g, dw))
            slope -= speed * math.sin(theta) * float(inner(g, w))
        biases = [b for b in d.db if b is not None]
        for g, b in zip(grads[len(self._layers) :], biases, strict=True):
            slope += float(inner(g, b))
        return slope

    def _value(self, closure: Closure, calls_backward: bool | None = None) -> float:
        """Loss at the current weights without gradient, averaged over the processes
        (``inf`` if not finite); ``calls_backward``: the closure's convention (default: that of
        the last gradient evaluation)."""
        if calls_backward is None:
            calls_backward = self._calls_backward
        v = loss_value(closure, calls_backward=calls_backward)
        (v,) = self._mean([torch.tensor(v, dtype=torch.float64)])
        v = float(v)
        return v if math.isfinite(v) else math.inf
