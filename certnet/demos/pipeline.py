"""The demo pipeline: train (DAgger on the twin) → certify → simulate on the gymnasium env →
report. A gymnasium demo is a :class:`GymDemo` (what differs between demos: plant, expert,
config, plots, texts, optional extra sections such as a closed-loop certificate) run by
:func:`run_gym_demo`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.demos.report import (  # noqa: E402
    DemoResult,
    Region,
    Section,
    certify,
    plot_bounds,
    plot_training,
    sampled_lipschitz,
    save_controller,
    write_report,
)
from certnet.train import ImitationConfig, TrainResult, imitate  # noqa: E402

__all__ = [
    "GymDemo",
    "run_gym_demo",
    "timed_imitate",
    "demo_config",
    "DEMO_OPTIMIZER",
    "OPTIMIZER_SETTINGS",
    "QUICK_BUDGET",
    "demo_main",
]


@dataclass(frozen=True)
class GymDemo:
    """What distinguishes one gymnasium demo from another; run it with :func:`run_gym_demo`.

    Attributes
    ----------
    name : str
        Demo name (report title, :class:`DemoResult` name).
    env_id : str
        Gymnasium id of the evaluation environment (e.g. ``"Pendulum-v1"``).
    plant : Plant
        The differentiable twin the expert is imitated on.
    expert : callable
        obs → action, imitated by DAgger and evaluated alongside the learner.
    config : callable
        ``config(quick, seed, **overrides) -> ImitationConfig``.
    sample_low, sample_high : tuple of float
        Box of plant states (state units) whose observations sample the Lipschitz lower bound.
    plots : callable
        ``plots(out, net, plant, regions) -> [(caption, file name)]``: trajectories and phase
        portrait (drawing the certified ``regions``).
    intro : str
        Report introduction; ``str.format`` fields ``env_id``, ``episodes``, ``widths``,
        ``lipschitz``, ``optimizer``.
    loss_label : str
        y label of the training curve (imitation MSE with its unit).
    extra : str
        Markdown after the results table.
    success_rate : bool
        Report the success rate of the evaluation episodes.
    network : callable, optional
        ``network(cfg) -> nn.Module``: the network to train (default: the config's).
    sections : tuple of callables
        ``section(out, net, quick, seed) -> Section``, run after training (e.g. closed-loop
        certificates, extra evaluations).
    episodes : (int, int)
        Evaluation episodes with ``quick`` and without.
    """

    name: str
    env_id: str
    plant: Any
    expert: Callable[[Any], Any]
    config: Callable[..., ImitationConfig]
    sample_low: tuple[float, ...]
    sample_high: tuple[float, ...]
    plots: Callable[[Path, nn.Module, Any, list[Region]], list[tuple[str, str]]]
    intro: str
    loss_label: str
    extra: str = ""
    success_rate: bool = False
    network: Callable[[ImitationConfig], nn.Module] | None = None
    sections: tuple[Callable[[Path, nn.Module, bool, int], Section], ...] = ()
    episodes: tuple[int, int] = (10, 100)


#: Optimiser of the gym demos: certnet's MM (no learning rate).
DEMO_OPTIMIZER = "mm"
#: Per-optimiser settings. MM steps on the whole aggregated data set: its majoriser is fitted to
#: one deterministic objective, and on minibatches of 2048 it stalls (Pendulum-v1: −617 to −815
#: against −145 on the full set; docs/demos.md). Adam takes minibatches of 2048 at lr 3e-3.
OPTIMIZER_SETTINGS: dict[str, dict[str, Any]] = {
    "mm": dict(batch_size=None, epochs=100),
    "adam": dict(lr=3e-3, batch_size=2048, epochs=200),
}
#: The smoke-test budget of ``quick`` runs.
QUICK_BUDGET: dict[str, Any] = dict(hidden=(16, 16), iterations=2, episodes=8, steps=100, epochs=20)


def demo_config(
    quick: bool,
    seed: int,
    overrides: dict[str, Any],
    *,
    quick_changes: dict[str, Any] | None = None,
    **full: Any,
) -> ImitationConfig:
    """A demo's ``ImitationConfig``: the demo's ``full`` budget, the optimiser (``overrides``'
    or :data:`DEMO_OPTIMIZER`) with its :data:`OPTIMIZER_SETTINGS`, then (``quick``)
    :data:`QUICK_BUDGET` with the demo's ``quick_changes``, then ``overrides``."""
    optimizer = overrides.get("optimizer", DEMO_OPTIMIZER)
    base = {**full, "optimizer": optimizer, **OPTIMIZER_SETTINGS.get(optimizer, {})}
    base["seed"] = seed
    if quick:
        base.update(QUICK_BUDGET, **(quick_changes or {}))
    base.update(overrides)
    return ImitationConfig(**base)


def timed_imitate(
    expert: Callable[[Any], Any], plant: Any, cfg: ImitationConfig, net: nn.Module | None = None
) -> tuple[TrainResult, float]:
    """:func:`certnet.train.imitate` and its wall time in s."""
    t0 = time.perf_counter()
    res = imitate(expert, plant, cfg, net=net)
    return res, time.perf_counter() - t0


def run_gym_demo(spec: GymDemo, out: str | Path, quick: bool = False, seed: int = 0) -> DemoResult:
    """Train (DAgger), certify, evaluate on the gymnasium env and report into ``out``.

    Parameters
    ----------
    spec : GymDemo
        The demo.
    out : str or Path
        Output folder (created).
    quick : bool
        Smoke-test budget (seconds; the controller need not solve the task).
    seed : int
        Training seed; evaluation episodes use reset seeds seed, seed+1, ….

    Returns
    -------
    DemoResult
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    plant = spec.plant
    cfg = spec.config(quick, seed, progress=not quick)
    net0 = None if spec.network is None else spec.network(cfg)
    res, train_s = timed_imitate(spec.expert, plant, cfg, net0)
    net = res.net
    methods = ("product", "fast") if quick else ("product", "fast", "lipsdp-neuron")
    cert, rows = certify(net, methods)
    states = np.random.default_rng(seed).uniform(
        spec.sample_low, spec.sample_high, (2000, len(spec.sample_low))
    )
    lower = sampled_lipschitz(net, plant.observe(torch.tensor(states)))
    files = save_controller(net, out, cert)
    episodes = spec.episodes[0] if quick else spec.episodes[1]
    ev = cn.export.evaluate(cn.export.to_policy(net, plant=plant), spec.env_id, episodes, seed)
    expert_ev = cn.export.evaluate(spec.expert, spec.env_id, episodes, seed)
    metrics: dict[str, Any] = {
        "env": spec.env_id,
        "episodes": episodes,
        "mean_return": float(np.mean(ev.returns)),
        "std_return": float(np.std(ev.returns)),
    }
    if spec.success_rate:
        metrics["success_rate"] = float(np.mean(ev.success))
    metrics.update(
        {
            "expert_mean_return": float(np.mean(expert_ev.returns)),
            "certified_lipschitz": float(cert.value),
            "certificate_method": cert.method,
            "budget_by_construction": float(net.lipschitz_bound()),
            "sampled_lipschitz_lower_bound": lower,
            "train_seconds": train_s,
            "final_imitation_mse": res.history.loss[-1],
        }
    )
    sections = [section(out, net, quick, seed) for section in spec.sections]
    for s in sections:
        metrics.update(s.metrics)
    images = spec.plots(out, net, plant, [r for s in sections for r in s.regions])
    plot_training(res.history, out / "training_curve.png", spec.loss_label)
    plot_bounds(rows, out / "lipschitz_bounds.png", lower)
    images += [
        ("Lipschitz bounds by method", "lipschitz_bounds.png"),
        ("Training curve", "training_curve.png"),
    ]
    images += [im for s in sections for im in s.images]
    extra = "\n\n".join(t for t in [spec.extra, *(s.text for s in sections)] if t)
    metrics["total_seconds"] = time.perf_counter() - t_start
    intro = spec.intro.format(
        env_id=spec.env_id,
        episodes=episodes,
        widths=net.widths,
        lipschitz=cfg.lipschitz,
        optimizer=cfg.optimizer,
    )
    report = write_report(out, f"certnet demo: {spec.name}", intro, rows, metrics, images, extra)
    files += [report, out / "metrics.json"] + [out / name for _, name in images]
    files += [f for s in sections for f in s.files]
    return DemoResult(spec.name, out, report, metrics, cert, net, res.history, files)


def demo_main(run: Callable[..., DemoResult], name: str, argv: list[str] | None) -> DemoResult:
    """``python demos/NAME.py [OUT] [--quick]``: run the demo, print a one-line summary."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    rest = [a for a in args if a != "--quick"]
    result = run(Path(rest[0]) if rest else Path("out") / name, quick=quick)
    print(
        f"mean return {result.metrics['mean_return']:.1f} over {result.metrics['episodes']} "
        f"episodes; certified Lipschitz bound {result.certificate.value:.4g} "
        f"({result.certificate.method}); report: {result.report_path}"
    )
    return result
