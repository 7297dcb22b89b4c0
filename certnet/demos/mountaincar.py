"""MountainCar demo: gymnasium ``MountainCarContinuous-v0`` with a certified controller.

Pipeline: a smooth energy-pumping expert a = c·tanh(k (v + v₀)) → DAgger imitation into a
Frobenius-normalised network on the twin :class:`certnet.plants.MountainCar` → Lipschitz
certificates by method (float64 re-checked) → 100 seeded episodes on the real env → report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.demos.pipeline import (  # noqa: E402
    GymDemo,
    demo_config,
    demo_main,
    run_gym_demo,
    timed_imitate,
)
from certnet.demos.report import DemoResult, Region  # noqa: E402
from certnet.plants.policy import apply_policy  # noqa: E402
from certnet.train import ImitationConfig, TrainResult  # noqa: E402

__all__ = ["ENV_ID", "PumpExpert", "config", "train", "run", "main"]

ENV_ID = "MountainCarContinuous-v0"


class PumpExpert:
    """Energy pumping a = c·tanh(k (v + v₀)): push along the velocity, gently (the reward
    charges 0.1 a² per step), starting to the right (v₀ > 0). Scores about 96 on 30 seeded
    episodes.

    Parameters
    ----------
    amplitude : float
        c, the action amplitude (the action range is [−1, 1]).
    steepness : float
        k, per unit of velocity (velocity units per step).
    offset : float
        v₀, velocity offset that breaks the tie at rest.
    """

    def __init__(
        self, amplitude: float = 0.6, steepness: float = 100.0, offset: float = 1e-3
    ) -> None:
        self.c, self.k, self.v0 = amplitude, steepness, offset

    def __call__(self, obs: Any) -> Any:
        """Action for obs = [position, velocity]: numpy or torch, one or a batch."""
        return apply_policy(self._act, obs, 2)

    def _act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.c * torch.tanh(self.k * (obs[:, 1:2] + self.v0))


def config(quick: bool = False, seed: int = 0, **overrides: Any) -> ImitationConfig:
    """The demo's training configuration (``quick``: a smoke-test budget)."""
    return demo_config(
        quick,
        seed,
        overrides,
        hidden=(32, 32),
        lipschitz=1000.0,
        iterations=4,
        episodes=32,
        steps=300,
    )


def train(cfg: ImitationConfig) -> tuple[TrainResult, float]:
    """Train on the twin; returns the result and the wall time in s."""
    return timed_imitate(PumpExpert(), cn.plants.MountainCar(), cfg)


def _plots(out: Path, net: nn.Module, plant: Any, regions: list[Region]) -> list[tuple[str, str]]:
    policy = cn.export.to_policy(net, plant=plant)
    x0 = torch.tensor([[-0.6, 0.0], [-0.5, 0.0], [-0.4, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        roll = plant.rollout(policy, x0, 300)
    t = np.arange(301)
    pos, vel = np.asarray(roll.states[..., 0]), np.asarray(roll.states[..., 1])
    fig, ax = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    for k in range(len(x0)):
        ax[0].plot(t, pos[k], label=f"x₀ = {float(x0[k, 0]):.2g}")
        ax[1].plot(t[:-1], np.asarray(roll.actions[k, :, 0]))
    ax[0].axhline(0.45, color="k", ls=":", label="goal")
    ax[0].set_ylabel("position")
    ax[1].set_ylabel("action")
    ax[1].set_xlabel("step")
    ax[0].legend(fontsize=7)
    ax[0].set_title("closed-loop trajectories on the twin")
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for k in range(len(x0)):
        ax.plot(pos[k], vel[k], lw=1)
    ax.axvline(0.45, color="k", ls=":")
    ax.set_xlabel("position")
    ax.set_ylabel("velocity")
    ax.set_title("phase portrait")
    fig.tight_layout()
    fig.savefig(out / "phase_portrait.png", dpi=110)
    plt.close(fig)
    return [("Trajectories", "trajectories.png"), ("Phase portrait", "phase_portrait.png")]


def _spec() -> GymDemo:
    return GymDemo(
        name="mountaincar",
        env_id=ENV_ID,
        plant=cn.plants.MountainCar(),
        expert=PumpExpert(),
        config=config,
        sample_low=(-1.2, -0.07),
        sample_high=(0.6, 0.07),
        plots=_plots,
        intro=(
            "Gymnasium `{env_id}` (the real environment), {episodes} seeded episodes. "
            "Controller: NormalizedMLP {widths}, Lipschitz budget {lipschitz:g}, trained by "
            "DAgger on an energy-pumping expert ({optimizer})."
        ),
        loss_label="imitation MSE",
        extra=(
            "Closed-loop certificate: not applicable: the task is to leave the valley's "
            "equilibrium and reach the goal, not to stabilise an equilibrium. The Lipschitz "
            "bound is in action units per raw observation unit; velocity spans only ±0.07, "
            "so a controller that reacts to it needs a large bound in these units."
        ),
        success_rate=True,
    )


def run(out: str | Path, quick: bool = False, seed: int = 0) -> DemoResult:
    """Train, certify, simulate on ``MountainCarContinuous-v0`` and report into ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder (created).
    quick : bool
        Smoke-test budget.
    seed : int
        Training seed; evaluation episodes use reset seeds seed, seed+1, ….

    Returns
    -------
    DemoResult
    """
    return run_gym_demo(_spec(), out, quick, seed)


def main(argv: list[str] | None = None) -> DemoResult:
    """``python demos/mountaincar.py [OUT] [--quick]``."""
    return demo_main(run, "mountaincar", argv)
