"""Behaviour cloning from an expert, with DAgger (the expert relabels the learner's states)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from certnet.train.config import ImitationConfig
from certnet.train.policy import TrainResult
from certnet.train.rollout import initial_box, sample_box, visited_states
from certnet.train.setup import Run, Stepper, network_for

__all__ = ["imitate", "expert_labels"]


def expert_labels(expert: Callable, obs: torch.Tensor) -> torch.Tensor:
    """The expert's actions on a batch of observations, shape (N, m), dtype of ``obs``.

    Raises
    ------
    ValueError
        The expert returned a different number of rows, or NaN/inf.
    """
    with torch.no_grad():
        u = torch.as_tensor(expert(obs), dtype=obs.dtype).reshape(obs.shape[0], -1)
    if not torch.isfinite(u).all():
        raise ValueError("the expert returned NaN/inf actions; check it on these observations")
    return u


def imitate(
    expert: Callable[[torch.Tensor], torch.Tensor],
    plant,
    config: ImitationConfig | None = None,
    *,
    net: nn.Module | None = None,
) -> TrainResult:
    """Behaviour cloning + DAgger: fit a network to an expert on the states it will visit.

    Round 0 rolls out the expert from ``episodes`` initial states drawn from the box
    [x0_low, x0_high] (default: the plant's reset box); every later round rolls out the
    current learner. Each visited state is relabelled with the expert's action
    u* = expert(observe(x)), added to the aggregated data set D, and the network
    takes ``epochs`` optimiser steps on the mean-squared error

        ℓ(π) = (1/|D|) Σ_{(o, u*) ∈ D} ‖π(o) − u*‖²   (action units²).

    With the default ``NormalizedMLP`` the Lipschitz bound ``config.lipschitz`` holds
    throughout, so an expert steeper than the budget is matched only as well as the budget
    allows.

    Parameters
    ----------
    expert : callable
        obs (N, n_obs) torch tensor → actions (N, m) (e.g. ``certnet.experts.lqr(plant)``).
    plant : certnet.plants.Plant
        Torch plant used for the rollouts (``step``, ``observe``, ``u_min``, ``u_max``).
    config : ImitationConfig, optional
        Default ``ImitationConfig()``.
    net : nn.Module, optional
        Policy obs → action; default: built from ``config`` with output scale u_max.

    Returns
    -------
    TrainResult
        ``net`` and ``history`` (``loss`` = MSE on D after each round,
        ``extra["dataset_size"]``).

    Raises
    ------
    ValueError
        A mis-sized box; an expert returning NaN/inf; a mismatched checkpoint.
    FileNotFoundError
        ``resume = true`` and no checkpoint file.
    """
    cfg = config if config is not None else ImitationConfig()
    low, high = initial_box(cfg, plant)
    net = network_for(cfg, plant, net)
    dtype = next(net.parameters()).dtype
    stepper = Stepper(net, cfg)
    run = Run("imitate", cfg, net, stepper)

    def body(it: int) -> dict[str, float]:
        gen = run.generator(it)
        x0 = sample_box(low, high, cfg.episodes, gen, dtype)
        policy = expert if it == 0 else net
        obs = plant.observe(visited_states(plant, policy, x0, cfg.steps)).to(dtype)
        labels = expert_labels(expert, obs)
        if "obs" in run.data:
            obs = torch.cat([run.data["obs"], obs])
            labels = torch.cat([run.data["labels"], labels])
        run.data = {"obs": obs, "labels": labels}
        loss = float("nan")
        full = cfg.batch_size is None or cfg.batch_size >= obs.shape[0]
        for epoch in range(cfg.epochs):
            if full:
                xb, yb = obs, labels
            else:
                idx = torch.randint(obs.shape[0], (cfg.batch_size,), generator=gen)
                xb, yb = obs[idx], labels[idx]
            loss = stepper.step(
                lambda xb=xb, yb=yb: ((net(xb) - yb) ** 2).sum(-1).mean(),
                new_batch=not full,
                new_objective=epoch == 0,
            )
        with torch.no_grad():
            loss = float(((net(obs) - labels) ** 2).sum(-1).mean())
        return {"loss": loss, "dataset_size": obs.shape[0]}

    history = run.loop(cfg.iterations, body, "DAgger")
    return TrainResult(net, history)
