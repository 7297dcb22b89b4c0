"""RiemannianSGD: fixed-step gradient descent on the product of Frobenius spheres."""

from __future__ import annotations

import math

import torch
from torch import nn

from certnet.geometry import proju
from certnet.optim.closure import Closure, check_finite_gradient
from certnet.optim.curve import SphereOptimizer

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
        Learning rate > 0. It lives in ``param_groups[0]["lr"]`` and is read at every step,
        so ``torch.optim.lr_scheduler`` schedules it as for ``torch.optim.SGD``.
    process_group : torch.distributed.ProcessGroup, optional
        Group to average the gradients over, as for :class:`~certnet.optim.MM`.

    Raises
    ------
    ValueError
        lr not positive and finite; a layer in mode "ball".
    TypeError
        A trainable parameter not on a Frobenius sphere; ``process_group`` is not a process
        group.
    """

    def __init__(
        self,
        net: nn.Module,
        lr: float,
        *,
        process_group: torch.distributed.ProcessGroup | None = None,
    ) -> None:
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}; e.g. lr=0.1")
        super().__init__(net, {"lr": float(lr)}, process_group=process_group)

    def step(self, closure: Closure | None = None) -> torch.Tensor | None:  # type: ignore[override]
        """One step.

        Parameters
        ----------
        closure : callable, optional
            ``closure() -> loss``, in either convention (as for :meth:`MM.step`). Without a
            closure the gradients already in ``.grad`` are used (after the caller's
            ``loss.backward()``), averaged over the processes under ``torch.distributed``.

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
            start = self._loss_and_grad(closure)
            loss, gw, gb = start.loss, start.gw, start.gb
        else:
            loss = None
            self._project_points()
            missing = [k for k, lin in enumerate(self._layers) if lin.point.grad is None]
            if missing:
                raise ValueError(
                    f"layers {missing} have no gradient; call loss.backward() before step(), "
                    "or pass a closure"
                )
            biases = [b for lin in self._layers if (b := self._bias(lin)) is not None]
            grads = [lin.point.grad for lin in self._layers]
            grads += [b.grad for b in biases if b.grad is not None]
            grads = self._mean(grads)
            check_finite_gradient(grads, self.steps_done)
            depth = len(self._layers)
            gw = [
                proju(lin.point, g, lin.radius)
                for lin, g in zip(self._layers, grads[:depth], strict=True)
            ]
            it = iter(grads[depth:])
            gb = [
                None if (b := self._bias(lin)) is None or b.grad is None else next(it)
                for lin in self._layers
            ]
        saved = self._save()
        dw = [-g for g in gw]
        db = [None if b is None else -b for b in gb]
        angles = self._move(saved, dw, db, lr)
        st = self._state
        st["step"] = self.steps_done + 1
        st["last"] = {"eta": lr, "angles": angles, "evaluations": int(closure is not None)}
        return loss
