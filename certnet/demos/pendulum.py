"""Pendulum demo: swing-up and balance on gymnasium ``Pendulum-v1`` with a certified controller.

Pipeline: the energy-shaping + LQR expert :func:`certnet.experts.swing_up` → DAgger imitation
into a Frobenius-normalised network (Lipschitz budget in N m per observation unit) on the
differentiable twin :class:`certnet.plants.Pendulum` → Lipschitz certificates by several
methods (float64 re-checked) → a local closed-loop certificate around the upright equilibrium
→ 100 seeded episodes on the real gymnasium env → report with plots.
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
from scipy.optimize import brentq  # noqa: E402
from torch import nn  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.demos.loop import closed_loop_section, draw_region  # noqa: E402
from certnet.demos.pipeline import (  # noqa: E402
    GymDemo,
    demo_config,
    demo_main,
    run_gym_demo,
    timed_imitate,
)
from certnet.demos.report import DemoResult, Region, Section  # noqa: E402
from certnet.experts import EnergySwingUp  # noqa: E402
from certnet.nn.extract import LayerStack, extract_layers  # noqa: E402
from certnet.train import ImitationConfig, TrainResult  # noqa: E402

__all__ = ["ENV_ID", "SwingUpExpert", "config", "train", "run", "main"]

ENV_ID = "Pendulum-v1"


def SwingUpExpert(plant: Any) -> EnergySwingUp:  # noqa: N802  (kept for benchmarks/controllers.py)
    """The demo's expert: :func:`certnet.experts.swing_up` with its Pendulum-v1 defaults
    (energy pumping, LQR catch for |θ| < 1 rad; −142.0 over 100 seeded episodes)."""
    return cn.experts.swing_up(plant)


def config(quick: bool = False, seed: int = 0, **overrides: Any) -> ImitationConfig:
    """The demo's training configuration (``quick``: a smoke-test budget of a few seconds)."""
    return demo_config(
        quick,
        seed,
        overrides,
        hidden=(64, 64),
        lipschitz=300.0,
        iterations=6,
        episodes=64,
        steps=200,
    )


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

    fig, axes = plt.subplots(1, 2 if regions else 1, figsize=(10 if regions else 5, 4.5))
    ax = axes[0] if regions else axes
    for k in range(len(x0)):
        ax.plot(th[k], w[k], lw=1)
        ax.plot(th[k, 0], w[k, 0], "ko", ms=3)
    for region in regions:
        draw_region(ax, region)
    ax.set_xlabel("θ (rad)")
    ax.set_ylabel("θ̇ (rad/s)")
    ax.set_title("phase portrait")
    if regions:
        _zoom(axes[1], plant, policy, regions[0])
    fig.tight_layout()
    fig.savefig(out / "phase_portrait.png", dpi=110)
    plt.close(fig)
    return [("Trajectories", "trajectories.png"), ("Phase portrait", "phase_portrait.png")]


def _zoom(ax: Any, plant: Any, policy: Any, region: Region) -> None:
    """The certified region up close, with trajectories of the deployed controller on the
    twin from 16 points of its boundary."""
    L = np.linalg.cholesky(region.P)
    t = np.linspace(0, 2 * math.pi, 17)[:-1]
    x0 = region.center[:, None] + np.linalg.solve(L.T, np.stack([np.cos(t), np.sin(t)]))
    with torch.no_grad():
        roll = plant.rollout(policy, torch.tensor(x0.T), 200)
    for tr in roll.states.numpy():
        ax.plot(tr[:, 0], tr[:, 1], color="0.4", lw=0.7)
    ax.plot([], [], color="0.4", lw=0.7, label="trajectories from its boundary (twin)")
    draw_region(ax, region)
    ax.plot(*region.center, "k+", ms=8)
    half = 1.6 * np.abs(x0 - region.center[:, None]).max(axis=1)
    ax.set_xlim(region.center[0] - half[0], region.center[0] + half[0])
    ax.set_ylim(region.center[1] - half[1], region.center[1] + half[1])
    ax.set_xlabel("θ (rad)")
    ax.set_ylabel("θ̇ (rad/s)")
    ax.set_title("near upright: the certified region (real loop)")
    ax.legend(fontsize=7, loc="upper right")


def _equilibrium(stack: LayerStack, plant: Any) -> float | None:
    """θ* near upright where the network's torque holds the pendulum at rest, i.e. the root of
    a sin θ + b sat(π(cos θ, sin θ, 0)) = 0 (a = 3g/(2l), b = 3/(m l²)) where the feedback
    pushes back (the sign changes from + to −); None when there is none within ±0.3 rad."""
    a = 3 * plant.g / (2 * plant.length)
    b = 3 / (plant.mass * plant.length**2)

    def h(theta: float) -> float:
        u = stack.forward(np.array([math.cos(theta), math.sin(theta), 0.0]))[0]
        return a * math.sin(theta) + b * float(np.clip(u, -plant.max_torque, plant.max_torque))

    grid = np.linspace(-0.3, 0.3, 601)
    values = np.array([h(t) for t in grid])
    down = np.flatnonzero((values[:-1] > 0) & (values[1:] <= 0))
    if not down.size:
        return None
    k = down[np.argmin(np.abs(grid[down]))]
    return float(brentq(h, grid[k], grid[k + 1], xtol=1e-15, rtol=4 * np.finfo(float).eps))


def _loop_section(out: Path, net: nn.Module, quick: bool, seed: int) -> Section:
    plant = cn.plants.Pendulum()
    stack = extract_layers(net)
    head = "## Closed-loop certificate (the real plant)"
    theta = _equilibrium(stack, plant)
    if theta is None:
        text = (
            f"{head}\n\nNot certified: the learned controller has no closed-loop equilibrium "
            "within ±0.3 rad of upright where its torque pushes back."
        )
        return Section(text, {"closed_loop_certified": False})
    box = ([theta - math.pi, -plant.max_speed], [theta + math.pi, plant.max_speed])
    meaning = (
        "What it means: proved on the **real loop** — the network's own forward pass reading "
        "[cos θ, sin θ, θ̇], the ±2 N m torque clip, and the Pendulum-v1 twin's update "
        "(semi-implicit Euler, speed clip ±8 rad/s), run on interval arithmetic; nothing is "
        "linearised. Every trajectory that starts in the certified region stays in the ellipse "
        "(or, from a proved cell, reaches it) and converges to the upright equilibrium x* = "
        f"(θ*, 0), θ* = {theta:.3g} rad: the upright **catch region**, the states from which "
        "the controller brings the pendulum up without swinging through a full turn. The "
        "swing-up from below (which passes through other turns of θ) is not certified. "
        "The region is found by `cn.verify.closed_loop` (a quadratic Lyapunov function shaped "
        "on samples and proved by branch and bound on cells of states, then cells of the box "
        "θ* ± π, |θ̇| ≤ 8 followed until they provably reach it)."
    )
    return closed_loop_section(
        plant,
        net,
        out,
        meaning=meaning,
        basin_box=(box[0][0], box[1][0], box[0][1], box[1][1]),
        x_eq=[theta, 0.0],
        extend=box,
        quick=quick,
        seed=seed,
        steps=400,
        recheck="`Certificate.load(p).check(cn.load('controller.safetensors'), "
        "plant=cn.plants.Pendulum())` re-proves it (or `certnet verify controller.safetensors "
        "--closed-loop --plant pendulum --check closed_loop_certificate.json`).",
    )


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
        sections=(_loop_section,),
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
