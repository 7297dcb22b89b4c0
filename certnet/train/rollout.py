"""Batched rollouts of a policy network on a torch plant (the part both trainers share)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "initial_box",
    "sample_box",
    "saturate",
    "action_bounds",
    "rollout_cost",
    "visited_states",
]


def sample_box(
    low: tuple[float, ...], high: tuple[float, ...], n: int, gen: torch.Generator, dtype
) -> torch.Tensor:
    """n states drawn uniformly from the box [low, high] (state units), shape (n, len(low))."""
    lo = torch.tensor(low, dtype=torch.float64)
    hi = torch.tensor(high, dtype=torch.float64)
    u = torch.rand(n, lo.numel(), generator=gen, dtype=torch.float64)
    return (lo + (hi - lo) * u).to(dtype)


def action_bounds(plant, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The plant's actuator limits (u_min, u_max) as tensors of shape (m,)."""
    m = plant.n_inputs
    lo = torch.as_tensor(plant.u_min, dtype=dtype).flatten().expand(m)
    hi = torch.as_tensor(plant.u_max, dtype=dtype).flatten().expand(m)
    return lo, hi


def saturate(u: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """clip(u, lo, hi) in the forward pass with the identity as its gradient (straight-through),
    so a saturated actuator still tells the policy which way to move."""
    return u + (torch.maximum(torch.minimum(u, hi), lo) - u).detach()


def initial_box(cfg, plant) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The box of initial states: the config's (x0_low, x0_high), else the plant's reset box."""
    if cfg.x0_low is None:
        return tuple(map(float, plant.reset_low)), tuple(map(float, plant.reset_high))
    if len(cfg.x0_low) != plant.n_states:
        raise ValueError(
            f"x0_low/x0_high have {len(cfg.x0_low)} entries but the plant has "
            f"{plant.n_states} states ({', '.join(plant.state_names)})"
        )
    return cfg.x0_low, cfg.x0_high


def rollout_cost(plant, net: nn.Module, x0: torch.Tensor, horizon: int) -> torch.Tensor:
    """Mean cost per step, −(1/(B·T)) Σ_b Σ_t reward(x_t, u_t), of the closed loop
    x_{t+1} = step(x_t, sat(net(observe(x_t)))) over ``horizon`` steps (differentiable)."""
    lo, hi = action_bounds(plant, x0.dtype)
    x, total = x0, x0.new_zeros(())
    for _ in range(horizon):
        u = saturate(net(plant.observe(x)), lo, hi)
        total = total - plant.reward(x, u).sum()
        x = plant.step(x, u)
    return total / (x0.shape[0] * horizon)


def visited_states(
    plant, policy: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, steps: int
) -> torch.Tensor:
    """States x_0 … x_{T−1} visited by ``policy`` (obs → action) from each x0, shape (B·T, n)."""
    lo, hi = action_bounds(plant, x0.dtype)
    xs, x = [], x0
    with torch.no_grad():
        for _ in range(steps):
            xs.append(x)
            u = torch.as_tensor(policy(plant.observe(x)), dtype=x0.dtype).reshape(x.shape[0], -1)
            x = plant.step(x, torch.maximum(torch.minimum(u, hi), lo))
    return torch.cat(xs)
