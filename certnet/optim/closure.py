"""Calling the user's closure, in either of the two closure conventions.

certnet's optimisers accept both closures a PyTorch user writes:

* **certnet's**: ``closure() -> loss``; the optimiser differentiates the loss itself;
* **PyTorch's** (what ``torch.optim.LBFGS`` expects): the closure calls ``opt.zero_grad()`` and
  ``loss.backward()`` and returns the loss.

Note [closure conventions]
--------------------------
Nothing tells the two apart before the closure runs, so the first evaluation of a step (the one
that needs the gradient) runs it with every ``.grad`` set to ``None``: a closure that called
``backward()`` has populated ``.grad``, and that gradient is used (the gradient is that of
whatever the closure called ``backward()`` on; the loss compared between trials is what it
returns — the semantics of ``torch.optim.LBFGS``, which also accepts a closure that accumulates
the gradient over chunks and returns a detached total). A closure that did not is
differentiated with ``torch.autograd.grad``, exactly as before this convention was accepted
(bit-identical), and its ``.grad`` are put back as they were.

Two evaluations cannot let ``backward()`` run:

* the trial evaluations run under ``torch.no_grad()`` (they need the value only, and are the
  cheap part of a step); there ``backward()`` would raise;
* AutoNewton needs the gradient *with* its graph (``create_graph=True``) for a Hessian-vector
  product, and a ``backward()`` call frees the graph.

In both, the closure runs inside :class:`_DeferredBackward`, a ``TorchFunctionMode`` (thread-local,
scoped to the call) that records each ``Tensor.backward`` / ``torch.autograd.backward`` call
instead of running it; AutoNewton then differentiates the recorded tensors itself. The mode
adds a little Python overhead to every torch call inside the closure, which is why the first
evaluation of a certnet-convention closure in MM and RiemannianSGD runs without it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode

__all__ = [
    "Evaluation",
    "check_loss",
    "check_finite_loss",
    "check_finite_gradient",
    "evaluate",
    "loss_value",
]

Closure = Callable[[], torch.Tensor]


def check_loss(loss) -> torch.Tensor:
    """The closure's return value as a 0-d tensor; ``TypeError`` naming the fix otherwise.

    Raises
    ------
    TypeError
        ``loss`` is not a tensor with exactly one element.
    """
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = type(loss).__name__
        if isinstance(loss, torch.Tensor):
            got += f" of shape {tuple(loss.shape)}"
        raise TypeError(
            f"the closure must return the loss as a scalar tensor, got {got}; reduce it over "
            "the batch, e.g. return ((net(X) - Y) ** 2).mean()"
        )
    return loss.reshape(())


def check_finite_loss(phi: float, where: str, step: int) -> None:
    """``FloatingPointError`` naming the step if the loss φ is NaN/inf."""
    if not math.isfinite(phi):
        raise FloatingPointError(
            f"the closure returned {phi} {where} at step {step}; the weights were not changed "
            "(the last good weights are kept). Check the data for NaN/inf and that the loss is "
            "finite at the current weights"
        )


def check_finite_gradient(
    grads: Sequence[torch.Tensor], step: int, phi: float | None = None
) -> None:
    """``FloatingPointError`` naming the step (and the loss φ) if a gradient is NaN/inf."""
    if not all(bool(torch.isfinite(g).all()) for g in grads):
        loss = "" if phi is None else f" (loss {phi})"
        raise FloatingPointError(
            f"the gradient is not finite at step {step}{loss}; the weights were not changed "
            "(the last good weights are kept)"
        )


class _DeferredBackward(TorchFunctionMode):
    """Records the closure's ``backward()`` calls instead of running them (see the notes)."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[torch.Tensor] = []
        self.grad_outputs: list[torch.Tensor | None] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.backward:
            self.outputs.append(args[0])
            self.grad_outputs.append(kwargs.get("gradient"))
            return None
        if func is torch.autograd.backward:
            tensors, grads = args[0], kwargs.get("grad_tensors")
            tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
            if grads is None or isinstance(grads, torch.Tensor):
                grads = [grads] * len(tensors)
            self.outputs += tensors
            self.grad_outputs += list(grads)
            return None
        return func(*args, **kwargs)


@dataclass
class Evaluation:
    """One evaluation of the closure with its gradient.

    Attributes
    ----------
    loss : Tensor
        The loss the closure returned, 0-d.
    grads : list of Tensor
        Gradient of each parameter (zeros where it has none), with its graph when the
        evaluation was asked for one.
    calls_backward : bool
        Whether the closure follows PyTorch's convention (it calls ``backward()``).
    """

    loss: torch.Tensor
    grads: list[torch.Tensor]
    calls_backward: bool


def evaluate(
    closure: Closure, params: Sequence[torch.Tensor], *, create_graph: bool = False
) -> Evaluation:
    """Run ``closure`` at the current weights and take the gradient of ``params``.

    Parameters
    ----------
    closure : callable
        Either convention (see the module notes).
    params : sequence of Tensor
        The parameters to differentiate.
    create_graph : bool
        Keep the gradient's graph (for a Hessian-vector product).

    Returns
    -------
    Evaluation

    Raises
    ------
    TypeError
        The closure does not return a scalar tensor.
    ValueError
        The closure neither calls ``backward()`` nor returns a loss that depends on the
        weights.
    """
    kept = [p.grad for p in params]
    for p in params:
        p.grad = None
    deferred = _DeferredBackward() if create_graph else contextlib.nullcontext()
    try:
        with torch.enable_grad(), deferred:
            loss = check_loss(closure())
    except Exception:
        _put_back(params, kept)
        raise
    if not create_graph and any(p.grad is not None for p in params):  # PyTorch's convention
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
        return Evaluation(loss, grads, True)
    _put_back(params, kept)
    calls_backward = create_graph and bool(deferred.outputs)
    outputs, grad_outputs = [loss], [None]
    if calls_backward:
        outputs, grad_outputs = deferred.outputs, deferred.grad_outputs
    elif not loss.requires_grad:
        raise ValueError(
            "the closure's loss does not depend on the network's weights; compute it from "
            "net(...) inside the closure, outside torch.no_grad()"
        )
    with torch.enable_grad():
        raw = torch.autograd.grad(
            outputs, params, grad_outputs, create_graph=create_graph, allow_unused=True
        )
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, raw, strict=True)]
    return Evaluation(loss, grads, calls_backward)


def _put_back(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g


def loss_value(closure: Closure, *, calls_backward: bool) -> float:
    """The closure's loss at the current weights, without gradient (a trial evaluation).

    ``calls_backward``: the closure follows PyTorch's convention; its ``backward()`` calls are
    then recorded and skipped (under ``torch.no_grad()`` they would raise).
    """
    deferred = _DeferredBackward() if calls_backward else contextlib.nullcontext()
    with torch.no_grad(), deferred:
        value = closure()
    return float(value)
