"""The closed-loop section of a demo report: a local stability certificate of the plant in
feedback with the trained network (:func:`certnet.verify.closed_loop`), a sampled check of the
deployed controller on the nonlinear plant, and the certified region to draw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.demos.report import Region, Section  # noqa: E402

__all__ = ["closed_loop_section", "draw_region"]


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
