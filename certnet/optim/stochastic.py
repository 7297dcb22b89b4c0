"""StochasticMM: MM on a stream of mini-batches, still without a learning rate.

Note [stochastic MM]
--------------------
Full-batch MM gets its speed from two things that mini-batches break: L-BFGS curvature pairs
(s, y) and a step size fitted to the losses it observes. On a new batch both go wrong in the
naive version. The pair y = ĝ_{B_{k+1}}(w_{k+1}) − ĝ_{B_k}(w_k) mixes the change of the
gradient (curvature) with the difference between two batches (noise), so MM restarts its memory
at every batch and falls back to a safeguarded gradient descent; and the step that minimises
the majoriser of one batch overshoots for the full loss, by as much as the batch gradient is
noise. StochasticMM keeps the first and tempers the second, without introducing a step size:

* **Overlapping batches for the curvature pairs** (the multi-batch L-BFGS of Berahas, Nocedal &
  Takáč 2016). Step k minimises the mean loss of the last two batches it was given,
  φ_k = ½(ℓ_{B_{k−1}} + ℓ_{B_k}), so consecutive objectives share the batch B_k, and the pair
  of step k is formed on that shared batch only: y_k = ĝ_{B_k}(w_{k+1}) − 𝒯ĝ_{B_k}(w_k). Both
  gradients are needed anyway (the first for step k, the second for step k+1), so the pair
  costs no extra evaluation, s and y describe one function, and the memory is kept across
  batches. Each batch serves two consecutive steps.
* **The majoriser fitted on a running estimate.** The curvature scale κ of the majoriser
  M_κ(η) = φ_k(0) − ηG + (κ/2)(e^η − 1)² is refitted at every trial to the observed losses and
  carried from step to step (exactly as in :class:`~certnet.optim.MM`), so across batches it is
  a running estimate of the curvature along the update curve; the acceptance test
  φ_k(η) ≤ φ_k(0) holds on the step's own objective (monotone per objective, not for F, the
  loss over all the data). Because φ_k averages two batches, each step's direction and size
  are chosen on the data of a batch twice as large (half the gradient noise) at the cost of
  two batch gradients, and each batch serves two steps.

Why this keeps the no-learning-rate promise: SGD needs a learning rate, and a schedule that
decays it, because its step must average out the noise of many batches. Here every step is a
deterministic MM step on a well-defined objective (a fixed set of samples), sized by a
majoriser fitted to observed losses, with curvature pairs that describe one function. On
regression to noise-free targets (an expert's actions, the increments of a simulated plant: the
targets certnet's trainers produce) the batch losses share their minimisers up to the
approximation error (the interpolation regime), where a step that is good for a batch is good
for the full loss (Vaswani et al. 2019, stochastic line searches). The batch size remains a
choice of memory and time per step, not a step size; with one batch holding all the data
StochasticMM is MM. A step discounted by a noise-to-signal ratio estimated from the two batch
gradients was tried and removed: the gradient of the previous batch at the new point is biased
(the last step was fitted to it), the ratio then reads "no signal" on small batches and the
steps shrink to nothing on a plateau (docs/optimisers.md).
"""

from __future__ import annotations

import torch

from certnet.optim.closure import Closure
from certnet.optim.direction import angle_gradient
from certnet.optim.mm import MM

__all__ = ["StochasticMM"]


class StochasticMM(MM):
    """MM for a stream of mini-batches: every ``step`` gets a new batch. No learning rate.

    Step k minimises φ_k = ½(ℓ_{k−1} + ℓ_k), the mean of the losses of the previous closure and
    of this one, with the MM step of :class:`~certnet.optim.MM` (L-BFGS direction, majoriser
    with fitted curvature κ, monotone acceptance test on φ_k). The L-BFGS memory is *kept*
    across batches: the curvature pair of step k is formed on the batch that steps k and k+1
    share, so it describes one function (Note [stochastic MM] in the module docstring). The
    first step (and the first after :meth:`restart`) uses its own batch only, and so does a
    step given the same closure object as the step before (one objective: an MM step).

    Parameters
    ----------
    net, direction, process_group
        As for :class:`~certnet.optim.MM` (under ``torch.distributed`` each process gives its
        shard of every batch).

    Raises
    ------
    TypeError, ValueError
        As :class:`~certnet.optim.MM` (a parameter off every sphere, a bad ``direction``, …).

    Notes
    -----
    Cost per step: two gradient evaluations of one batch each (this batch and the previous one,
    at the current weights) and two forward evaluations per trial — the cost of MM on a batch
    twice as large, and each batch serves two steps (plus one gradient per batch for a trial
    whose change of the loss is below rounding, as in MM). ``last_step`` adds ``"batches"``
    (1 or 2). The previous closure is not part of ``state_dict`` (a closure cannot be saved):
    after ``load_state_dict`` the next step uses its own batch only, unless
    :meth:`prime` gives it back; the memory and κ are restored.

    Examples
    --------
    >>> import torch, certnet as cn
    >>> net = cn.nn.NormalizedMLP([2, 16, 1], seed=0)
    >>> X = torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
    >>> Y = torch.tanh(X[:, :1] - X[:, 1:])
    >>> opt = cn.optim.StochasticMM(net)
    >>> full = lambda: float(((net(X) - Y) ** 2).mean().detach())
    >>> before = full()
    >>> for xb, yb in zip(X.split(64), Y.split(64)):
    ...     _ = opt.step(lambda xb=xb, yb=yb: ((net(xb) - yb) ** 2).mean())
    >>> full() < before, opt.last_step["batches"]
    (True, 2)
    """

    _previous: Closure | None = None  # the closure of the previous step's batch

    def restart(self) -> None:
        """The objective changed (e.g. the data set grew): forget the L-BFGS memory and the
        previous batch. Not needed between the mini-batches of one data set."""
        super().restart()
        self._previous = None

    def load_state_dict(self, state_dict: dict) -> None:
        """As ``torch.optim.Optimizer.load_state_dict``; the previous batch is forgotten (see
        :meth:`prime`)."""
        super().load_state_dict(state_dict)
        self._previous = None

    def prime(self, closure: Closure) -> None:
        """Make ``closure`` the previous batch, as if the last step had been given it.

        A resumed run calls it after ``load_state_dict`` with the closure of the batch of the
        step before the checkpoint, so that the next step is the one the uninterrupted run
        takes (a closure is not part of ``state_dict``).
        """
        self._previous = closure

    def step(self, closure: Closure) -> torch.Tensor:  # type: ignore[override]
        """One MM step on the mean loss of the previous batch and this one.

        Parameters
        ----------
        closure : callable
            ``closure() -> loss`` on a new mini-batch (scalar tensor), in either convention
            (as for :meth:`MM.step`). It is kept, and called again in the next step.

        Returns
        -------
        Tensor
            This closure's loss before the step (averaged over the processes).

        Raises
        ------
        FloatingPointError
            A loss or gradient at the current weights is NaN/inf (weights unchanged).
        TypeError
            No closure, or the closure does not return a scalar tensor.
        """
        new = self._loss_and_grad(closure)
        calls_backward = self._calls_backward
        gw, gb, phi0 = new.gw, new.gb, new.phi
        pair, prev = None, self._previous
        if prev is closure:  # the same objective again: one batch
            prev = None
        if prev is None:

            def value() -> float:
                return self._value(closure, calls_backward)

            def slope(saved, eta: float) -> float:
                return self._slope(closure, saved, d, eta)

        else:
            old = self._loss_and_grad(prev)
            prev_calls_backward = self._calls_backward
            gw = [(a + b) / 2 for a, b in zip(new.gw, old.gw, strict=True)]
            gb = [None if a is None else (a + b) / 2 for a, b in zip(new.gb, old.gb, strict=True)]
            phi0 = (new.phi + old.phi) / 2
            pair = angle_gradient(self._layers, old.gw, old.gb)

            def value() -> float:
                return (
                    self._value(closure, calls_backward) + self._value(prev, prev_calls_backward)
                ) / 2

            def slope(saved, eta: float) -> float:
                return (self._slope(closure, saved, d, eta) + self._slope(prev, saved, d, eta)) / 2

        d = self._direction(gw, gb, pair_gradient=pair)
        found = self._search(value, phi0, d, new.loss.dtype, slope=slope)
        self._record(found.eta, gradient=angle_gradient(self._layers, new.gw, new.gb))
        batches = 1 if prev is None else 2
        calls = batches * (1 + found.tries + found.slopes)
        grads = batches * (1 + found.slopes)
        self._finish(found, d, evaluations=calls, gradients=grads, batches=batches)
        self._previous = closure
        return new.loss
