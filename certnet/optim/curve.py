"""The update curve on the product of spheres that every certnet optimiser walks along.

All three optimisers move the parameters of a network's :class:`~certnet.nn.FrobeniusLinear`
layers along a one-parameter curve

    Γ(η) = ( Exp_{W_1}(η D_1), …, Exp_{W_L}(η D_L);  b_1 + η d_1, …, b_L + η d_L ),

where W_k ∈ S_{r_k} is the stored point of layer k (``layer.point``), D_k a tangent vector at W_k
and d_k the bias direction. Because Exp keeps ‖W_k‖_F = r_k for every η, the Lipschitz bound
∏ r_k holds at every point of the curve. The class :class:`SphereOptimizer` holds the shared
mechanism: find the layers, refuse parameters that are not on a sphere, evaluate the closure and
its Riemannian gradient, move to Γ(η), and restore the last good weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from certnet.geometry import expmap, inner, norm, proju, projx
from certnet.nn.frobenius import FrobeniusLinear
from certnet.optim.direction import DIRECTIONS, Direction, record_step, search_direction

__all__ = ["SphereOptimizer", "find_layers", "unit_angle_direction"]

Closure = Callable[[], torch.Tensor]


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
    if not isinstance(net, nn.Module):
        raise TypeError(
            f"expected the network (an nn.Module, e.g. certnet.nn.NormalizedMLP), got "
            f"{type(net).__name__}; certnet's optimisers are built from the network, not from "
            "a parameter list"
        )
    layers = [m for m in net.modules() if isinstance(m, FrobeniusLinear)]
    if not layers:
        raise TypeError(
            f"{type(net).__name__} has no FrobeniusLinear layer; build the network with "
            "certnet.nn.NormalizedMLP or certnet.nn.FrobeniusLinear"
        )
    known = {id(lin.point) for lin in layers}
    known |= {id(lin.bias) for lin in layers if lin.bias is not None}
    for name, p in net.named_parameters():
        if p.requires_grad and id(p) not in known:
            raise TypeError(
                f"parameter {name!r} (shape {tuple(p.shape)}) is not on a Frobenius sphere; "
                "a free step would lose the Lipschitz bound. Use FrobeniusLinear for it, or "
                "freeze it with requires_grad_(False)"
            )
    for k, lin in enumerate(layers):
        if lin.mode != "sphere":
            raise ValueError(
                f"layer {k} has mode {lin.mode!r}; MM, AutoNewton and RiemannianSGD step along "
                "geodesics of the sphere and need mode='sphere'. For mode='ball' use a "
                "Euclidean optimiser (e.g. torch.optim.Adam): the parametrisation keeps "
                "‖W‖_F ≤ r for any value of the stored tensor"
            )
    return layers


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
    """

    def __init__(self, net: nn.Module, defaults: dict, direction: str = "lbfgs") -> None:
        if direction not in DIRECTIONS:
            raise ValueError(
                f"unknown direction {direction!r}; choose one of: {', '.join(DIRECTIONS)}"
            )
        self.direction = direction
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
        super().__init__(points + biases, defaults)
        self._layers = layers

    # ------------------------------------------------------------------ state
    @property
    def _state(self) -> dict:
        """Optimiser-wide state, stored under the first point (so state_dict carries it)."""
        return self.state[self._layers[0].point]

    @property
    def steps_done(self) -> int:
        """Number of completed calls to ``step``."""
        return int(self._state.get("step", 0))

    def restart(self) -> None:
        """Forget the L-BFGS memory: the next step is a steepest-descent step.

        Call it when the objective changes between steps (new data): the curvature pairs
        describe one objective.
        """
        self._state.pop("memory", None)

    def _direction(self, gw, gb) -> Direction:
        """The search direction from the gradients (reads the L-BFGS memory)."""
        memory = self._state.setdefault("memory", {})
        return search_direction(self._layers, gw, gb, memory, self.direction)

    def _record(self, eta: float) -> None:
        """Tell the L-BFGS memory which step along the last direction was taken."""
        record_step(self._state.setdefault("memory", {}), eta)

    @staticmethod
    def _eta_cap(d: Direction) -> float:
        """Largest η at which no layer turns by more than π/2 rad along ``d``."""
        return math.inf if d.turn == 0.0 else (math.pi / 2.0) / d.turn

    def _bias(self, lin: FrobeniusLinear) -> torch.Tensor | None:
        return lin.bias if lin.bias is not None and lin.bias.requires_grad else None

    # ------------------------------------------------------------------ evaluation
    def _check_loss(self, loss, where: str) -> torch.Tensor:
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError(
                f"the closure must return the loss as a scalar tensor, got "
                f"{type(loss).__name__}"
                + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else "")
            )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the closure returned {float(loss.detach())} {where} at step "
                f"{self.steps_done}; the weights were not changed (the last good weights "
                "are kept). Check the data for NaN/inf and that the loss is finite at the "
                "current weights"
            )
        return loss.reshape(())

    def _loss_and_grad(
        self, closure: Closure, *, create_graph: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor | None], list[torch.Tensor]]:
        """Evaluate the closure and its gradient.

        Returns the loss (with graph when ``create_graph``), the Riemannian gradients of the
        points, the bias gradients, and the raw autograd gradients of all parameters in the
        order points, biases (with graph when ``create_graph``).
        """
        if closure is None:
            raise TypeError(
                "step needs a closure: def closure(): return loss_fn(net(X), Y). It must not "
                "call backward(); the optimiser differentiates it itself"
            )
        self._project_points()
        with torch.enable_grad():
            loss = self._check_loss(closure(), "at the current weights")
            if not loss.requires_grad:
                raise ValueError(
                    "the closure's loss does not depend on the network's weights; compute it "
                    "from net(...) inside the closure, outside torch.no_grad()"
                )
            params = [lin.point for lin in self._layers]
            params += [b for lin in self._layers if (b := self._bias(lin)) is not None]
            raw = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
        raw = [torch.zeros_like(p) if g is None else g for p, g in zip(params, raw, strict=True)]
        if not all(bool(torch.isfinite(g).all()) for g in raw):
            raise FloatingPointError(
                f"the gradient is not finite at step {self.steps_done} "
                f"(loss {float(loss.detach())}); the weights were not changed (the last good "
                "weights are kept)"
            )
        depth = len(self._layers)
        gw = [
            proju(lin.point.detach(), g.detach(), lin.radius)
            for lin, g in zip(self._layers, raw[:depth], strict=True)
        ]
        it = iter(raw[depth:])
        gb = [None if self._bias(lin) is None else next(it).detach() for lin in self._layers]
        return loss, gw, gb, raw

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

    def _value(self, closure: Closure) -> float:
        """Loss at the current weights without gradient (``inf`` if not finite)."""
        with torch.no_grad():
            v = closure()
        v = float(v)
        return v if math.isfinite(v) else math.inf
