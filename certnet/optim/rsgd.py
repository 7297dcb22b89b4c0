"""RiemannianSGD: fixed-step gradient descent on the product of Frobenius spheres."""

from __future__ import annotations

import math

import torch
from torch import nn

from certnet.geometry import proju
from certnet.optim.curve import Closure, SphereOptimizer

__all__ = ["RiemannianSGD"]


class RiemannianSGD(SphereOptimizer):
    """W_k ← Exp_{W_k}(−lr · grad_k),  b_k ← b_k − lr · ∇_b loss.

    The baseline with a learning rate. On S_r it is gradient descent on the positive-scale-
    invariant quotient (the PSI manifold): the layer turns by lr · ‖grad_k‖ / r_k rad, whatever
    the scale of the stored tensor. The constraint, hence the Lipschitz bound, holds exactly.

    Parameters
    ----------
    net : nn.Module
        Network whose trainable parameters are all in :class:`~certnet.nn.FrobeniusLinear`
        layers with mode "sphere".
    lr : float
        Learning rate > 0.

    Raises
    ------
    ValueError
        lr not positive and finite; a layer in mode "ball".
    TypeError
        A trainable parameter not on a Frobenius sphere.
    """

    def __init__(self, net: nn.Module, lr: float) -> None:
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}; e.g. lr=0.1")
        super().__init__(net, {"lr": float(lr)})

    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One step.

        Parameters
        ----------
        closure : callable, optional
            ``closure() -> loss`` without ``backward()``. Without a closure the gradients
            already in ``.grad`` are used (after the caller's ``loss.backward()``).

        Returns
        -------
        Tensor or None
            The loss before the step (``None`` without a closure).

        Raises
        ------
        FloatingPointError
            NaN/inf loss or gradient (weights unchanged).
        ValueError
            No closure and some parameter has no ``.grad``.
        """
        lr = self.param_groups[0]["lr"]
        if closure is not None:
            loss, gw, gb, _ = self._loss_and_grad(closure)
        else:
            loss = None
            self._project_points()
            missing = [k for k, lin in enumerate(self._layers) if lin.point.grad is None]
            if missing:
                raise ValueError(
                    f"layers {missing} have no gradient; call loss.backward() before step(), "
                    "or pass a closure"
                )
            gw = [proju(lin.point, lin.point.grad, lin.radius) for lin in self._layers]
            gb = [
                None if (b := self._bias(lin)) is None or b.grad is None else b.grad
                for lin in self._layers
            ]
            if not all(
                bool(torch.isfinite(g).all()) for g in gw + [b for b in gb if b is not None]
            ):
                raise FloatingPointError(
                    f"the gradient is not finite at step {self.steps_done}; the weights were "
                    "not changed (the last good weights are kept)"
                )
        saved = self._save()
        dw = [-g for g in gw]
        db = [None if b is None else -b for b in gb]
        angles = self._move(saved, dw, db, lr)
        st = self._state
        st["step"] = self.steps_done + 1
        st["last"] = {"eta": lr, "angles": angles, "evaluations": int(closure is not None)}
        return None if loss is None else loss.detach()
