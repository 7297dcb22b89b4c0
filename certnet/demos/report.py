"""What every demo shares: the pipeline (train → certify → simulate → report), certificates of
the trained network by several methods, the saved controller, plots and ``report.md``.

A gymnasium demo is a :class:`GymDemo` (what differs between demos: plant, expert, config,
plots, texts, optional extra sections such as a closed-loop certificate) run by
:func:`run_gym_demo`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.train import History, ImitationConfig, TrainResult, imitate  # noqa: E402

__all__ = [
    "DemoResult",
    "GymDemo",
    "Region",
    "Section",
    "run_gym_demo",
    "timed_imitate",
    "demo_config",
    "DEMO_OPTIMIZER",
    "OPTIMIZER_SETTINGS",
    "QUICK_BUDGET",
    "demo_main",
    "draw_region",
    "closed_loop_section",
    "certify",
    "save_controller",
    "plot_training",
    "plot_bounds",
    "sampled_lipschitz",
    "write_report",
]


@dataclass
class DemoResult:
    """What a demo produced.

    Attributes
    ----------
    name : str
        Demo name.
    out : Path
        Output folder.
    report_path : Path
        ``out / "report.md"``.
    metrics : dict
        Returns, bounds, timings (JSON-serialisable).
    certificate : Certificate
        The tightest certified Lipschitz bound (also in ``certificate.json``).
    net : nn.Module
        The trained controller.
    history : History
        Its training history.
    files : list of Path
        Every file written.
    """

    name: str
    out: Path
    report_path: Path
    metrics: dict[str, Any]
    certificate: Any
    net: nn.Module
    history: History
    files: list[Path] = field(default_factory=list)


def certify(
    net: nn.Module, methods: tuple[str, ...], time_budget: float = 20.0
) -> tuple[Any, list[dict[str, Any]]]:
    """Lipschitz certificates of ``net`` by each method; returns the tightest certified one
    (re-checked in float64 with ``check``) and one table row per method; ``time_budget`` (s)
    caps the "fast" method."""
    rows, best = [], None
    for method in methods:
        t0 = time.perf_counter()
        try:
            cert = cn.verify.lipschitz(net, method=method, time_budget=time_budget)
            proved = cert.check(net) if cert.certified else math.nan
            status = "certified" if cert.certified else f"not certified: {cert.reason}"
        except Exception as exc:  # a method that cannot run is reported, not fatal
            rows.append(
                {
                    "method": method,
                    "value": math.nan,
                    "status": f"not available: {exc}",
                    "seconds": time.perf_counter() - t0,
                }
            )
            continue
        rows.append(
            {
                "method": method,
                "value": float(cert.value),
                "checked": float(proved),
                "status": status,
                "seconds": time.perf_counter() - t0,
            }
        )
        if cert.certified and (best is None or cert.value < best.value):
            best = cert
    if best is None:
        raise RuntimeError(f"no Lipschitz method certified the controller: {rows}")
    return best, rows


def save_controller(net: nn.Module, out: Path, cert: Any) -> list[Path]:
    """Write ``controller.safetensors`` (certificate JSON in its metadata) and
    ``certificate.json``."""
    model = cn.save(net, out / "controller.safetensors", metadata={"certificate": cert.to_json()})
    return [model, cert.save(out / "certificate.json")]


def plot_training(history: History, path: Path, ylabel: str) -> Path:
    """Training curve: loss per iteration (log scale when positive)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(history.loss) + 1), history.loss, marker="o", ms=3)
    if min(history.loss) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title("training curve")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_bounds(rows: list[dict[str, Any]], path: Path, sampled: float) -> Path:
    """Bar chart of the Lipschitz bound per method, with the sampled lower bound."""
    ok = [r for r in rows if math.isfinite(r["value"])]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([r["method"] for r in ok], [r["value"] for r in ok], color="tab:blue")
    ax.axhline(sampled, color="tab:red", ls="--", label=f"sampled lower bound {sampled:.3g}")
    ax.set_ylabel("Lipschitz bound (action units / obs unit)")
    ax.set_title("certified Lipschitz bounds by method")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    out: Path,
    title: str,
    intro: str,
    rows: list[dict[str, Any]],
    metrics: dict[str, Any],
    images: list[tuple[str, str]],
    extra: str = "",
) -> Path:
    """``report.md``: certificate table, metrics, plots."""
    lines = [
        f"# {title}",
        "",
        intro,
        "",
        "## Lipschitz certificates",
        "",
        "| method | bound | re-checked (float64) | status | time (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['value']:.6g} | {r.get('checked', math.nan):.6g} | "
            f"{r['status']} | {r['seconds']:.2f} |"
        )
    lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
    for k, v in metrics.items():
        lines.append(f"| {k} | {_number(v)} |" if isinstance(v, float) else f"| {k} | {v} |")
    if extra:
        lines += ["", extra]
    lines += ["", "## Plots", ""]
    for caption, name in images:
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    lines += [
        "## Files",
        "",
        "- `controller.safetensors` — load with `certnet.load`; the "
        "certificate JSON is in its metadata (`certnet.read_metadata(path)['certificate']`)",
        "- `certificate.json` — the tightest certificate; `Certificate.load(p).check(net)` "
        "re-proves it",
        "- `metrics.json` — the numbers above",
    ]
    if (out / "closed_loop_certificate.json").is_file():
        lines.append(
            "- `closed_loop_certificate.json` — the closed-loop certificate; "
            "`Certificate.load(p).check()` re-proves it from the weights stored in it"
        )
    lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    return path


def _number(v: float) -> str:
    """Six significant digits, more when rounding would carry a value below 1 (a contraction
    rate ρ) up to 1."""
    text = f"{v:.6g}"
    return f"{v:.12g}" if v < 1 <= float(text) else text


def sampled_lipschitz(net: nn.Module, obs: Any) -> float:
    """Largest Jacobian spectral norm ‖∂net/∂obs‖₂ over the sample ``obs`` (N, n_obs): a lower
    bound on Lip(net) that every certified bound must exceed."""
    x = torch.as_tensor(obs, dtype=next(net.parameters()).dtype).clone().requires_grad_(True)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: net(v[None])[0]))(x)
    return float(torch.linalg.matrix_norm(jac.detach().double(), ord=2).max())


# ---------------------------------------------------------------------------- the pipeline
@dataclass(frozen=True)
class Region:
    """A certified ellipse in a phase plane, {z : (z − center)ᵀ P (z − center) ≤ 1}.

    Attributes
    ----------
    center : ndarray, shape (2,)
        In the plotted states' units.
    P : ndarray, shape (2, 2)
        Positive definite, in (state unit)⁻².
    label : str
        Legend text (say what is certified, e.g. "certified ROA (linearised loop)").
    """

    center: np.ndarray
    P: np.ndarray
    label: str


@dataclass
class Section:
    """An extra part of a demo report (e.g. a closed-loop certificate).

    Attributes
    ----------
    text : str
        Markdown, placed after the results table.
    metrics : dict
        Added to the report's metrics.
    images : list of (caption, file name)
        PNGs the section wrote into the output folder.
    files : list of Path
        Other files it wrote.
    regions : list of Region
        Certified regions to draw in the demo's phase portrait.
    """

    text: str
    metrics: dict[str, Any] = field(default_factory=dict)
    images: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)


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
    cert, rows = certify(net, methods, time_budget=3.0 if quick else 20.0)
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


def closed_loop_section(
    plant: Any,
    state_net: Any,
    policy: Callable[[torch.Tensor], torch.Tensor],
    out: Path,
    *,
    meaning: str,
    x_eq: Any = None,
    plane: tuple[int, int] = (0, 1),
    quick: bool = False,
    seed: int = 0,
    steps: int = 500,
    dvs: tuple[float, ...] | None = None,
    recheck: str = "`Certificate.load(p).check(net)` re-proves it on the saved controller.",
) -> Section:
    """Closed-loop certificate of x⁺ = F(x, sat(π(x))) around ``x_eq`` (sector method), with a
    sampled check of the deployed controller on the nonlinear plant.

    Parameters
    ----------
    plant : Plant
        The plant (state units SI).
    state_net : NormalizedMLP, nn.Sequential or LayerStack
        The controller as state feedback u = π(x) (n → m), the network that is certified.
    policy : callable
        The deployed controller as batched torch state → action, for the sampled check.
    out : Path
        Where ``closed_loop_certificate.json`` goes.
    meaning : str
        Markdown saying what exactly is certified (which loop, what is linearised).
    x_eq : array_like, optional
        The loop's equilibrium (default ``plant.x_eq``).
    plane : (int, int)
        The two states of the phase portrait; the region is the ellipsoid's slice there (the
        other states at their equilibrium values).
    quick : bool
        One SDP, at the first of ``dvs`` (default Δv = 0.1), without region growth, instead of
        the search.
    seed : int
        Seed of the sampled boundary states.
    steps : int
        Steps of the sampled check.
    dvs : tuple of float, optional
        Half-widths Δv of the first-layer box to try (each grown as
        :func:`certnet.verify.closed_loop` does; the largest certified region wins) instead of
        its own search (the default, and the better choice: it also searches downwards).
    recheck : str
        Markdown telling how to re-prove ``closed_loop_certificate.json``.

    Returns
    -------
    Section
        Text (certificate table, what it means, sampled check), metrics
        ``closed_loop_*``, the certificate file and the region to draw; when nothing is
        certified the text says so and why.
    """
    t0 = time.perf_counter()
    grid: tuple[float | None, ...] = dvs or (None,)
    if quick:
        grid = (grid[0] if grid[0] is not None else 0.1,)
    certs = [
        cn.verify.closed_loop(plant, state_net, method="sector", x_eq=x_eq, dv=dv, grow=not quick)
        for dv in grid
    ]
    proved = [c for c in certs if c.certified]
    cert = max(proved, key=lambda c: c.data["roa_volume"]) if proved else certs[-1]
    seconds = time.perf_counter() - t0
    head = "## Closed-loop certificate (local)"
    metrics: dict[str, Any] = {
        "closed_loop_certified": bool(cert.certified),
        "closed_loop_method": cert.method,
        "closed_loop_seconds": seconds,
    }
    if not cert.certified:
        reasons = "; ".join(c.reason for c in certs)
        text = f"{head}\n\nNot certified: {reasons}.\n\n{meaning}"
        return Section(text, metrics)
    rho = cert.check(state_net)
    path = cert.save(out / "closed_loop_certificate.json")
    xe, P = cert.array("x_eq"), cert.array("P")
    n = len(xe)
    # sampled check: start on the ellipsoid's boundary, run the deployed controller
    L = np.linalg.cholesky(P)
    dirs = np.random.default_rng(seed).standard_normal((200 if quick else 2000, n))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    x = torch.tensor(xe + np.linalg.solve(L.T, dirs.T).T)
    with torch.no_grad():
        for _ in range(steps):
            x = plant.step(x, policy(x))
    converged = float(np.mean(np.abs(x.numpy() - xe).max(axis=1) < 1e-3))
    half = np.sqrt(np.diag(np.linalg.inv(P)))
    names = list(getattr(plant, "state_names", [f"x{k}" for k in range(n)]))
    units = list(getattr(plant, "state_units", [""] * n))
    i, j = plane
    fixed = [names[k] for k in range(n) if k not in plane]
    label = "certified region" + (
        ", linearised loop" if cert.method.endswith("linearization") else ""
    )
    label += f" (slice {', '.join(fixed)} at x*)" if fixed else ""
    region = Region(xe[[i, j]], P[np.ix_([i, j], [i, j])], label)
    metrics.update(
        {
            "closed_loop_rho": float(cert.value),
            "closed_loop_roa_volume": float(cert.data["roa_volume"]),
            "closed_loop_sampled_converged": converged,
        }
    )
    lines = [
        head,
        "",
        "| kind | method | ρ (decrease rate) | re-checked (float64) | ellipsoid volume "
        "| Δv | time (s) |",
        "|---|---|---|---|---|---|---|",
        f"| {cert.kind} | {cert.method} | {cert.value:.10g} | {rho:.10g} | "
        f"{cert.data['roa_volume']:.4g} | {cert.data['dv']:.3g} | {seconds:.1f} |",
        "",
        "Certified region {x : (x − x*)ᵀ P (x − x*) ≤ 1} around x* = "
        f"{np.array2string(xe, precision=4)}; its half-width along each state:",
        "",
        "| state | half-width |",
        "|---|---|",
        *(f"| {nm} | {h:.4g} {u} |" for nm, h, u in zip(names, half, units, strict=True)),
        "",
        meaning,
        "",
        f"Sampled check of the deployed controller on the nonlinear plant: "
        f"{converged:.1%} of {len(dirs)} states on the region's boundary are within 10⁻³ of "
        f"x* after {steps} steps (a sample, not a certificate). The certificate is in "
        f"`closed_loop_certificate.json`; {recheck}",
    ]
    return Section("\n".join(lines), metrics, files=[path], regions=[region])


def draw_region(ax: Any, region: Region, color: str = "C3") -> None:
    """Draw the ellipse of ``region`` on the matplotlib axes ``ax``."""
    t = np.linspace(0.0, 2.0 * np.pi, 300)
    L = np.linalg.cholesky(np.asarray(region.P, dtype=np.float64))
    ell = np.asarray(region.center, dtype=np.float64)[:, None] + np.linalg.solve(
        L.T, np.stack([np.cos(t), np.sin(t)])
    )
    ax.fill(ell[0], ell[1], color=color, alpha=0.25, lw=0)
    ax.plot(ell[0], ell[1], color=color, lw=1.5, label=region.label)


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
