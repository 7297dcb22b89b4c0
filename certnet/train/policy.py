"""Policy optimisation through differentiable batched rollouts of a torch plant."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from certnet.train.config import PolicyConfig
from certnet.train.rollout import initial_box, rollout_cost, sample_box
from certnet.train.setup import History, Run, Stepper, network_for

__all__ = ["TrainResult", "optimize_policy"]


@dataclass
class TrainResult:
    """What a trainer returns: the trained network and its :class:`History`."""

    net: nn.Module
    history: History


def optimize_policy(
    plant, config: PolicyConfig | None = None, *, net: nn.Module | None = None
) -> TrainResult:
    """Train a state-feedback policy by minimising the rollout cost of the closed loop.

    At iteration k a batch of B initial states is drawn uniformly from the box
    [x0_low, x0_high] (default: the plant's reset box), the closed loop
    x_{t+1} = step(x_t, sat(π(observe(x_t)))) is unrolled for T steps in torch, and the
    optimiser takes one step on

        J(π) = −(1/(B·T)) Σ_b Σ_{t<T} reward(x_t^b, u_t^b),

    the plant's own per-step cost (for :class:`certnet.plants.Pendulum` the exact Pendulum-v1
    cost θ² + 0.1 θ̇² + 0.001 u²). Saturation ``sat`` clips to [u_min, u_max] with a
    straight-through gradient. With the default ``NormalizedMLP`` the Lipschitz bound
    ``config.lipschitz`` holds at every iteration.

    Parameters
    ----------
    plant : certnet.plants.Plant
        Torch plant with batched differentiable ``step``, ``observe``, ``reward``.
    config : PolicyConfig, optional
        Budget, horizon, batch, optimiser, checkpointing (default ``PolicyConfig()``).
    net : nn.Module, optional
        Policy obs → action; default: built from ``config`` with output scale u_max.

    Returns
    -------
    TrainResult
        ``net`` (trained in place) and ``history`` (``loss`` = J per iteration,
        ``extra["horizon"]``).

    Raises
    ------
    ValueError
        A mis-sized box of initial states; a checkpoint that does not match.
    FileNotFoundError
        ``resume = true`` and no checkpoint file.
    KeyboardInterrupt
        Re-raised after the checkpoint is saved.
    """
    cfg = config if config is not None else PolicyConfig()
    low, high = initial_box(cfg, plant)
    net = network_for(cfg, plant, net)
    dtype = next(net.parameters()).dtype
    stepper = Stepper(net, cfg)
    run = Run("optimize_policy", cfg, net, stepper)

    def horizon(it: int) -> int:
        if cfg.horizon_start is None:
            return cfg.horizon
        ramp = max(1, cfg.iterations // 2)
        frac = min(1.0, it / ramp)
        return int(round(cfg.horizon_start + frac * (cfg.horizon - cfg.horizon_start)))

    def batch(it: int):
        """The closure of iteration ``it`` (its initial states and horizon) and the horizon."""
        x0 = sample_box(low, high, cfg.batch, run.generator(it), dtype)
        h = horizon(it)
        return (lambda: rollout_cost(plant, net, x0, h)), h

    def body(it: int) -> dict[str, float]:
        if it == run.start > 0:  # resumed: the batch of the step before the checkpoint
            stepper.resumed(batch(it - 1)[0])
        closure, h = batch(it)
        loss = stepper.step(closure, new_batch=True)
        return {"loss": loss, "horizon": h}

    history = run.loop(cfg.iterations, body, "policy optimisation")
    return TrainResult(net, history)
