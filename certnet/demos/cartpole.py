"""CartPole demo: balance certnet's continuous cart-pole from a generous box of initial states.

Pipeline: the dLQR expert (force saturated at ±10 N) → DAgger imitation into a bias-free
Frobenius-normalised network (Lipschitz budget in N per state unit, π(0) = 0 by construction)
on the twin :class:`certnet.plants.CartPole` → Lipschitz certificates by several methods
(float64 re-checked) → a closed-loop certificate around the upright equilibrium
(:func:`certnet.verify.closed_loop`, proved on the twin itself) → 100 seeded episodes on the
registered gymnasium env ``certnet/ContinuousCartPole-v0`` and batched runs on the twin from the
whole training box → report with plots.
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
from certnet.demos.loop import closed_loop_section, draw_region  # noqa: E402
from certnet.demos.pipeline import (  # noqa: E402
    GymDemo,
    demo_config,
    demo_main,
    run_gym_demo,
    timed_imitate,
)
from certnet.demos.report import DemoResult, Region, Section  # noqa: E402
from certnet.train import ImitationConfig, TrainResult  # noqa: E402

__all__ = ["ENV_ID", "BOX", "plant", "config", "network", "train", "run", "main"]

ENV_ID = "certnet/ContinuousCartPole-v0"
#: Half-widths of the box of initial states [x (m), ẋ (m/s), θ (rad), θ̇ (rad/s)] the
#: controller is trained on and evaluated from on the twin (θ up to 17°).
BOX = (1.0, 1.0, 0.3, 0.5)
#: Steps of a twin run (10 s).
STEPS = 500


def plant() -> Any:
    """The twin without termination (the generous box starts beyond gymnasium's 12°)."""
    return cn.plants.CartPole(x_threshold=math.inf, theta_threshold=math.inf)


def config(quick: bool = False, seed: int = 0, **overrides: Any) -> ImitationConfig:
    """The demo's training configuration (``quick``: a smoke-test budget of a few seconds)."""
    return demo_config(
        quick,
        seed,
        overrides,
        quick_changes=dict(epochs=200),
        hidden=(32, 32),
        lipschitz=100.0,
        iterations=4,
        episodes=64,
        steps=250,
        x0_low=tuple(-b for b in BOX),
        x0_high=BOX,
    )


def network(cfg: ImitationConfig) -> cn.nn.NormalizedMLP:
    """4 → hidden → 1 ``NormalizedMLP`` without biases, D_out = 10 N, budget ``cfg.lipschitz``
    N per state unit: an odd function, so π(0) = 0 and the upright rest is an equilibrium of
    the closed loop (which the closed-loop certificate needs)."""
    return cn.nn.NormalizedMLP(
        [4, *cfg.hidden, 1],
        activation=cfg.activation,
        lipschitz=cfg.lipschitz,
        bias=False,
        output_scale=10.0,
        seed=cfg.seed,
    )


def train(cfg: ImitationConfig) -> tuple[TrainResult, float]:
    """Train on the twin; returns the result and the wall time in s."""
    twin = plant()
    return timed_imitate(cn.experts.lqr(twin), twin, cfg, network(cfg))


def _box_states(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    half = torch.tensor(BOX, dtype=torch.float64)
    return (2 * torch.rand(n, 4, generator=gen, dtype=torch.float64) - 1) * half


def _balanced(twin: Any, policy: Any, x0: torch.Tensor) -> tuple[float, float]:
    """Fraction settled after STEPS steps with the cart inside ±2.4 m throughout, and the
    largest |x| (m)."""
    with torch.no_grad():
        roll = twin.rollout(policy, x0, STEPS)
    reach = roll.states[:, :, 0].abs().amax(dim=1)
    ok = twin.is_settled(roll.states[:, -1]) & (reach <= 2.4)
    return float(ok.double().mean()), float(reach.max())


def _box_section(out: Path, net: nn.Module, quick: bool, seed: int) -> Section:
    twin = plant()
    x0 = _box_states(100 if quick else 1000, seed + 1)
    learner = _balanced(twin, cn.export.to_policy(net, plant=twin), x0)
    expert = _balanced(twin, cn.experts.lqr(twin), x0)
    tol = np.array2string(np.asarray(twin.settle_tolerance), separator=", ")
    text = (
        f"## Balance from the training box (twin)\n\n{len(x0)} initial states drawn uniformly "
        f"from |x| ≤ {BOX[0]} m, |ẋ| ≤ {BOX[1]} m/s, |θ| ≤ {BOX[2]} rad, |θ̇| ≤ {BOX[3]} rad/s; "
        f"success = settled (|x|, |ẋ|, |θ|, |θ̇| within {tol} of 0) after {STEPS} steps "
        f"({STEPS * twin.dt:g} s) with the cart inside ±2.4 m all along.\n\n"
        "| controller | success rate | largest \\|x\\| (m) |\n|---|---|---|\n"
        f"| network | {learner[0]:.1%} | {learner[1]:.3g} |\n"
        f"| dLQR expert | {expert[0]:.1%} | {expert[1]:.3g} |"
    )
    metrics = {"box_success_rate": learner[0], "box_expert_success_rate": expert[0]}
    return Section(text, metrics)


def _loop_section(out: Path, net: nn.Module, quick: bool, seed: int) -> Section:
    twin = plant()
    meaning = (
        "What it means: proved on the **real loop** — the network's forward pass, the ±10 N "
        "force clip and the cart-pole twin's own update (gymnasium's equations, forward Euler "
        "at 0.02 s), run on interval arithmetic; nothing is linearised. Every trajectory "
        "starting in the ellipsoid stays in it and converges to the upright rest x* = 0."
    )
    return closed_loop_section(
        twin, net, out, meaning=meaning, basin_box=(-0.6, 0.6, -2.0, 2.0), plane=(2, 3),
        quick=quick, seed=seed,
        recheck="`Certificate.load(p).check(cn.load('controller.safetensors'), "
        "plant=cn.plants.CartPole())` re-proves it.",
    )


def _plots(out: Path, net: nn.Module, twin: Any, regions: list[Region]) -> list[tuple[str, str]]:
    policy = cn.export.to_policy(net, plant=twin)
    x0 = torch.tensor(
        [
            [0.0, 0.0, 0.3, 0.0],
            [1.0, 0.0, -0.2, 0.5],
            [-1.0, 1.0, 0.1, -0.5],
            [0.5, -1.0, 0.25, 0.5],
        ],
        dtype=torch.float64,
    )
    steps = 400
    with torch.no_grad():
        roll = twin.rollout(policy, x0, steps)
    t = np.arange(steps + 1) * twin.dt
    fig, ax = plt.subplots(3, 1, figsize=(6, 6.5), sharex=True)
    for k in range(len(x0)):
        lab = f"x₀ = {float(x0[k, 0]):.2g} m, θ₀ = {float(x0[k, 2]):.2g} rad"
        ax[0].plot(t, np.asarray(roll.states[k, :, 0]), label=lab)
        ax[1].plot(t, np.asarray(roll.states[k, :, 2]))
        ax[2].plot(t[:-1], np.asarray(roll.actions[k, :, 0]))
    ax[0].set_ylabel("cart x (m)")
    ax[1].set_ylabel("pole θ (rad)")
    ax[2].set_ylabel("force (N)")
    ax[2].set_xlabel("time (s)")
    ax[0].legend(fontsize=7)
    ax[0].set_title("closed-loop trajectories on the twin")
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=110)
    plt.close(fig)

    # empirical basin in the (θ, θ̇) plane with the cart at rest in the centre
    th = np.linspace(-0.6, 0.6, 61)
    om = np.linspace(-2.0, 2.0, 61)
    T, W = np.meshgrid(th, om, indexing="ij")
    grid = torch.zeros(T.size, 4, dtype=torch.float64)
    grid[:, 2], grid[:, 3] = torch.from_numpy(T.ravel()), torch.from_numpy(W.ravel())
    with torch.no_grad():
        x = grid
        for _ in range(STEPS):
            x = twin.step(x, policy(x))
    ok = (twin.is_settled(x).numpy() & (np.abs(x[:, 0].numpy()) < 2.4)).reshape(T.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(th, om, ok.T.astype(float), levels=[0.5, 1.5], colors=["#cfe8cf"])
    ax.plot([], [], color="#cfe8cf", lw=8, label="balanced after 10 s (x = ẋ = 0 starts)")
    for k in range(len(x0)):
        ax.plot(np.asarray(roll.states[k, :, 2]), np.asarray(roll.states[k, :, 3]), lw=1)
        ax.plot(float(x0[k, 2]), float(x0[k, 3]), "ko", ms=3)
    for region in regions:
        draw_region(ax, region)
    ax.set_xlim(th[0], th[-1])
    ax.set_ylim(om[0], om[-1])
    ax.set_xlabel("θ (rad)")
    ax.set_ylabel("θ̇ (rad/s)")
    ax.set_title("phase portrait (θ, θ̇); trajectories projected")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "phase_portrait.png", dpi=110)
    plt.close(fig)
    return [("Trajectories", "trajectories.png"), ("Phase portrait", "phase_portrait.png")]


def _spec() -> GymDemo:
    twin = plant()
    return GymDemo(
        name="cartpole",
        env_id=ENV_ID,
        plant=twin,
        expert=cn.experts.lqr(twin),
        config=config,
        sample_low=tuple(-b for b in BOX),
        sample_high=BOX,
        plots=_plots,
        intro=(
            "Balance of certnet's continuous cart-pole (gymnasium CartPole-v1 physics, force "
            "±10 N). Evaluated on the registered gymnasium environment `{env_id}` ({episodes} "
            "seeded episodes of 500 steps, start within ±0.05 of upright, reward 1 per step, "
            "episode ends at |θ| > 12° or |x| > 2.4 m) and on the twin from the whole training "
            "box. Controller: bias-free NormalizedMLP {widths}, Lipschitz budget {lipschitz:g} "
            "N per state unit (m, m/s, rad, rad/s), trained by DAgger on the dLQR expert "
            "({optimizer})."
        ),
        loss_label="imitation MSE (N²)",
        success_rate=True,
        network=network,
        sections=(_box_section, _loop_section),
        episodes=(3, 100),
    )


def run(out: str | Path, quick: bool = False, seed: int = 0) -> DemoResult:
    """Train, certify (Lipschitz and closed loop), simulate and report into ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder (created).
    quick : bool
        Smoke-test budget (seconds; the controller need not balance from the whole box).
    seed : int
        Training seed; evaluation episodes use reset seeds seed, seed+1, ….

    Returns
    -------
    DemoResult
    """
    return run_gym_demo(_spec(), out, quick, seed)


def main(argv: list[str] | None = None) -> DemoResult:
    """``python demos/cartpole.py [OUT] [--quick]``."""
    return demo_main(run, "cartpole", argv)
