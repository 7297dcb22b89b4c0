"""Pendulum demo: swing-up and balance on gymnasium ``Pendulum-v1`` with a certified controller.

Pipeline: an energy-shaping + LQR expert → DAgger imitation into a Frobenius-normalised network
(Lipschitz budget in N m per observation unit) on the differentiable twin
:class:`certnet.plants.Pendulum` → Lipschitz certificates by several methods (float64
re-checked) → 100 seeded episodes on the real gymnasium env → report with plots.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.demos.report import (  # noqa: E402
    DemoResult,
    GymDemo,
    Region,
    demo_main,
    draw_region,
    run_gym_demo,
    timed_imitate,
)
from certnet.experts import EnergySwingUp  # noqa: E402
from certnet.train import ImitationConfig, TrainResult  # noqa: E402

__all__ = ["ENV_ID", "SwingUpExpert", "config", "train", "run", "main"]

ENV_ID = "Pendulum-v1"


def SwingUpExpert(plant: Any) -> EnergySwingUp:  # noqa: N802  (kept for benchmarks/controllers.py)
    """The demo's expert: :func:`certnet.experts.swing_up` with its Pendulum-v1 defaults
    (energy pumping, LQR catch for |θ| < 1 rad; −142.0 over 100 seeded episodes)."""
    return cn.experts.swing_up(plant)


def config(quick: bool = False, seed: int = 0, **overrides: Any) -> ImitationConfig:
    """The demo's training configuration (``quick``: a smoke-test budget of a few seconds)."""
    base: dict[str, Any] = dict(
        hidden=(64, 64),
        lipschitz=300.0,
        optimizer="adam",
        lr=3e-3,
        iterations=6,
        episodes=64,
        steps=200,
        epochs=200,
        batch_size=2048,
        seed=seed,
    )
    if quick:
        base.update(hidden=(16, 16), iterations=2, episodes=8, steps=100, epochs=20)
    base.update(overrides)
    return ImitationConfig(**base)


def train(cfg: ImitationConfig) -> tuple[TrainResult, float]:
    """Train on the twin; returns the result and the wall time in s."""
    plant = cn.plants.Pendulum()
    return timed_imitate(SwingUpExpert(plant), plant, cfg)


def _plots(out: Path, net: nn.Module, plant: Any, regions: list[Region]) -> list[tuple[str, str]]:
    policy = cn.export.to_policy(net, plant=plant)
    x0 = torch.tensor([[math.pi, 0.0], [2.0, -1.0], [-1.0, 1.0], [0.5, 0.0]], dtype=torch.float64)
    with torch.no_grad():
        roll = plant.rollout(policy, x0, 200)
    t = np.arange(201) * plant.dt
    th = np.asarray(torch.atan2(torch.sin(roll.states[..., 0]), torch.cos(roll.states[..., 0])))
    w = np.asarray(roll.states[..., 1])
    # Break the line where θ wraps from π to −π, so no chord is drawn across the plot.
    th = th.copy()
    th[:, 1:][np.abs(np.diff(th, axis=1)) > math.pi] = np.nan
    fig, ax = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    for k in range(len(x0)):
        ax[0].plot(t, th[k], label=f"θ₀ = {float(x0[k, 0]):.2g} rad")
        ax[1].plot(t[:-1], np.asarray(roll.actions[k, :, 0]))
    ax[0].set_ylabel("θ (rad, wrapped)")
    ax[1].set_ylabel("torque (N m)")
    ax[1].set_xlabel("time (s)")
    ax[0].legend(fontsize=7)
    ax[0].set_title("closed-loop trajectories on the twin")
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for k in range(len(x0)):
        ax.plot(th[k], w[k], lw=1)
        ax.plot(th[k, 0], w[k, 0], "ko", ms=3)
    for region in regions:
        draw_region(ax, region)
    if regions:
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel("θ (rad)")
    ax.set_ylabel("θ̇ (rad/s)")
    ax.set_title("phase portrait")
    fig.tight_layout()
    fig.savefig(out / "phase_portrait.png", dpi=110)
    plt.close(fig)
    return [("Trajectories", "trajectories.png"), ("Phase portrait", "phase_portrait.png")]


def _spec() -> GymDemo:
    plant = cn.plants.Pendulum()
    return GymDemo(
        name="pendulum",
        env_id=ENV_ID,
        plant=plant,
        expert=SwingUpExpert(plant),
        config=config,
        sample_low=(-math.pi, -8.0),
        sample_high=(math.pi, 8.0),
        plots=_plots,
        intro=(
            "Swing-up and balance on gymnasium `{env_id}` (the real environment), {episodes} "
            "seeded episodes. Controller: NormalizedMLP {widths}, Lipschitz budget "
            "{lipschitz:g} N m per observation unit, trained by DAgger on an energy-shaping + "
            "LQR expert ({optimizer})."
        ),
        loss_label="imitation MSE (N m)²",
        extra=(
            "Closed-loop certificate: not certified: the controller acts on the observation "
            "[cos θ, sin θ, θ̇] and swings up through the whole circle, so there is no single "
            "state-feedback loop around the upright equilibrium to certify globally; the "
            "Lipschitz certificate above bounds the torque change per unit observation change."
        ),
    )


def run(out: str | Path, quick: bool = False, seed: int = 0) -> DemoResult:
    """Train, certify, simulate on ``Pendulum-v1`` and report into ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder (created).
    quick : bool
        Smoke-test budget (a few seconds; the controller will not swing up reliably).
    seed : int
        Training seed; evaluation episodes use reset seeds seed, seed+1, ….

    Returns
    -------
    DemoResult
    """
    return run_gym_demo(_spec(), out, quick, seed)


def main(argv: list[str] | None = None) -> DemoResult:
    """``python demos/pendulum.py [OUT] [--quick]``."""
    return demo_main(run, "pendulum", argv)
