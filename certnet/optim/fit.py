"""fit: the pipeline initialise → normalise → optimise, with a history for plotting."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import torch

from certnet.nn.mlp import NormalizedMLP
from certnet.optim.normalization import Normalization, as_data, normalize_data
from certnet.optim.progress import STALLED, StallWarning, judge
from certnet.optim.registry import build_optimizer, check_optimizer

__all__ = ["History", "fit", "LOSSES"]

#: Losses ``fit`` knows, in user units.
LOSSES = ("mse",)


@dataclass
class History:
    """What :func:`fit` recorded, one entry per optimiser step (lists, ready to plot).

    Attributes
    ----------
    loss : list of float
        MSE on the step's batch after the step, user units (output units²).
    step_size : list of float
        η taken (MM / AutoNewton curve parameter, or the learning rate of "rsgd" and
        "adam").
    angles : list of list of float
        Rotation angle of each layer's weight at each step, rad.
    evaluations : list of int
        Closure evaluations used by the step.
    bound : list of float
        ``net.lipschitz_bound()`` after each step (constant: the constraint is exact).
    epoch_loss : list of float
        Mean training loss of each epoch.
    normalization : Normalization or None
        The data scalings stored in the network.
    wall_time_s : float
        Time spent optimising, s.
    initial_loss, final_loss : float
        MSE on all the data before the first step and after the last, user units.
    status : {"improving", "converged", "stalled"}
        :data:`certnet.optim.progress.STATUSES`: still falling, stopped changing at working
        precision, or no progress at all (then ``fit`` also warns with a
        :class:`~certnet.optim.progress.StallWarning`).
    reason : str
        Why, in one sentence (for "stalled": the likely causes and what to do).
    """

    loss: list[float] = field(default_factory=list)
    step_size: list[float] = field(default_factory=list)
    angles: list[list[float]] = field(default_factory=list)
    evaluations: list[int] = field(default_factory=list)
    bound: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    normalization: Normalization | None = None
    wall_time_s: float = 0.0
    initial_loss: float = float("nan")
    final_loss: float = float("nan")
    status: str = ""
    reason: str = ""


def fit(
    net: NormalizedMLP,
    X,
    Y,
    loss: str = "mse",
    optimizer: str = "mm",
    epochs: int = 200,
    batch_size: int | None = None,
    *,
    lr: float | None = None,
    normalize: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Fit ``net`` to (X, Y): normalise the data (:func:`normalize_data`), then optimise.

    The objective is ½ mean ‖(f(x) − y) / s_out‖² / d_L, the MSE in the network's internal
    units (where the MM majoriser's scale is right); the history reports the MSE in user units.
    The Lipschitz bound holds at every step (every optimiser steps along sphere geodesics).

    Parameters
    ----------
    net : NormalizedMLP
        Initialised network; its scalings are replaced when ``normalize`` is true.
    X : array, shape (n, d₀)
        Inputs, user units.
    Y : array, shape (n, d_L)
        Targets, user units.
    loss : {"mse"}
        Loss.
    optimizer : {"mm", "smm", "autonewton", "rsgd", "adam"}
        A name of the optimiser registry :data:`certnet.optim.OPTIMIZERS`; "rsgd"
        (RiemannianSGD) and "adam" need ``lr``, "mm", "smm" and "autonewton" refuse it. For
        big data sets use "smm" (:class:`~certnet.optim.StochasticMM`) with a ``batch_size``:
        it keeps its curvature memory across the mini-batches, where "mm" restarts it at
        every batch.
    epochs : int
        Passes over the data, ≥ 1.
    batch_size : int, optional
        Mini-batch size; ``None`` = full batch (one step per epoch). The batches of an epoch
        are disjoint (a fresh permutation per epoch); "smm" steps on the last two.
    lr : float, optional
        Learning rate, only for ``optimizer="rsgd"`` or ``"adam"``.
    normalize : bool
        Call :func:`normalize_data` first (keep the network's scalings otherwise).
    seed : int
        Seed of the mini-batch shuffling (its own generator).
    progress : bool
        Show a rich progress bar.

    Returns
    -------
    History
        With ``status`` and ``reason``: a fit that did not lower the loss says so and why
        (:mod:`certnet.optim.progress`).

    Warns
    -----
    StallWarning
        The fit made no progress (``status == "stalled"``); the message gives the reason.

    Raises
    ------
    ValueError
        Unknown loss or optimiser (the message lists the registry), a learning rate missing
        or given where none exists, bad ``epochs``/``batch_size``, shapes or NaN/inf in the
        data.
    FloatingPointError
        The loss became NaN/inf; the message names the epoch and step, and the network keeps
        the last weights at which the loss was finite.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    spec = check_optimizer(optimizer, lr)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer ≥ 1, got {epochs!r}")
    if not isinstance(net, NormalizedMLP):
        raise TypeError(f"fit needs a certnet.nn.NormalizedMLP, got {type(net).__name__}")
    dt = net.input_scale.dtype
    X, Y = as_data(X, "X", dtype=dt), as_data(Y, "Y", dtype=dt)
    n = len(X)
    if batch_size is not None and (not isinstance(batch_size, int) or not 1 <= batch_size):
        raise ValueError(f"batch_size must be None or an integer ≥ 1, got {batch_size!r}")
    hist = History()
    if normalize:
        hist.normalization = normalize_data(net, X, Y)
    elif X.shape[1] != net.widths[0] or Y.shape[1] != net.widths[-1] or len(Y) != n:
        raise ValueError(
            f"the network maps {net.widths[0]} inputs to {net.widths[-1]} outputs; got X of "
            f"shape {tuple(X.shape)} and Y of shape {tuple(Y.shape)}"
        )
    opt = build_optimizer(optimizer, net, lr=lr)
    bs = n if batch_size is None else min(batch_size, n)
    gen = torch.Generator().manual_seed(int(seed))
    inv = 1.0 / net.output_scale
    d_out = net.widths[-1]

    def objective(xb, yb):
        return 0.5 * (((net(xb) - yb) * inv) ** 2).sum(dim=1).mean() / d_out

    def mse(xb, yb) -> float:
        with torch.no_grad():
            return float(((net(xb) - yb) ** 2).mean())

    def whole() -> torch.Tensor:  # one closure object: every step has the same objective
        return objective(X, Y)

    from rich.progress import Progress

    hist.initial_loss = mse(X, Y)
    with torch.no_grad():
        start_objective = float(objective(X, Y))
    steps: list[dict] = []
    t0 = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"fit ({optimizer})", total=epochs)
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen) if bs < n else None
            total = 0.0
            for start in range(0, n, bs):
                if order is None:
                    xb, yb, closure = X, Y, whole
                else:
                    idx = order[start : start + bs]
                    xb, yb = X[idx], Y[idx]
                    closure = lambda xb=xb, yb=yb: objective(xb, yb)  # noqa: E731
                    if not spec.stream:
                        opt.restart()  # a new mini-batch is a new objective: drop the pairs
                try:
                    opt.step(closure)
                except FloatingPointError as e:
                    raise FloatingPointError(
                        f"fit stopped in epoch {epoch}, optimiser step {opt.steps_done}: {e}"
                    ) from e
                last = opt.last_step
                steps.append(last)
                mse_user = mse(xb, yb)
                hist.loss.append(mse_user)
                hist.step_size.append(last["eta"])
                hist.angles.append(list(last["angles"]))
                hist.evaluations.append(last["evaluations"])
                hist.bound.append(net.lipschitz_bound())
                total += mse_user * len(xb)
            hist.epoch_loss.append(total / n)
            bar.update(task, advance=1, description=f"fit ({optimizer}) mse {total / n:.4g}")
    hist.wall_time_s = time.perf_counter() - t0
    hist.final_loss = mse(X, Y)
    verdict = judge(
        hist.initial_loss,
        hist.final_loss,
        steps,
        objective=start_objective,
        dtype=dt,
        lr=lr,
        budget=net.budget,
    )
    hist.status, hist.reason = verdict.status, verdict.reason
    if verdict.status == STALLED:
        warnings.warn(verdict.reason, StallWarning, stacklevel=2)
    return hist
