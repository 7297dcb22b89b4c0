"""The closed-loop section of a demo report: a region of attraction of the *real* plant in
feedback with the trained network (:func:`certnet.verify.closed_loop`), re-proved, checked by
simulation from 1000 states inside it, and drawn over the simulated basin.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402

import certnet as cn  # noqa: E402
from certnet.demos.report import Region, Section  # noqa: E402
from certnet.verify.loop_model import flush_subnormals  # noqa: E402
from certnet.verify.loop_plot import (  # noqa: E402
    coverage,
    empirical_basin,
    plot_region,
    region_samples,
    region_slice,
)

__all__ = ["closed_loop_section", "draw_region", "sampled_check"]

#: Cell budgets of a quick (smoke-test) run.
QUICK_CELLS = 20_000
QUICK_CELL_STEPS = 20_000


def sampled_check(loop: Any, cert: Any, count: int, steps: int, seed: int = 0) -> float:
    """Fraction of ``count`` states of the certified region (half on its boundary, half
    uniform inside) whose trajectories on the real loop stay in it and end within 1e-3 of x*
    (a sample, not a proof)."""
    P, x0 = cert.array("P"), cert.array("x_eq")
    x = region_samples(cert, count, seed)
    inside = np.ones(count, dtype=bool)
    xt = torch.as_tensor(x)
    with torch.no_grad(), flush_subnormals():
        for _ in range(steps):
            xt = loop.step(xt)
            d = xt.numpy() - x0
            inside &= np.einsum("bi,ij,bj->b", d, P, d) <= 1 + 1e-9
    ok = inside & (np.abs(xt.numpy() - x0).max(axis=1) < 1e-3)
    return float(ok.mean())


def closed_loop_section(
    plant: Any,
    net: Any,
    out: Path,
    *,
    meaning: str,
    basin_box: tuple[float, float, float, float],
    x_eq: Any = None,
    extend: Any = None,
    plane: tuple[int, int] = (0, 1),
    quick: bool = False,
    seed: int = 0,
    steps: int = 500,
    recheck: str = "`Certificate.load(p).check(net, plant=plant)` re-proves it.",
) -> Section:
    """Region of attraction of the real loop x⁺ = F(x, sat(π(h(x)))) around ``x_eq``.

    Parameters
    ----------
    plant : Plant
        The plant the demo runs (its own ``update``; states in SI units).
    net : NormalizedMLP or nn.Sequential
        The trained controller, as deployed (it reads the plant's observation).
    out : Path
        Where ``closed_loop_certificate.json`` and ``closed_loop_region.png`` go.
    meaning : str
        Markdown saying what exactly is certified.
    basin_box : (lo₀, hi₀, lo₁, hi₁)
        The fixed grid (states of ``plane``, their units) on which the basin is simulated and
        the region drawn — not scaled with the certificate.
    x_eq : array_like, optional
        Where to look for the loop's equilibrium (default ``plant.x_eq``).
    extend : (lo, hi), optional
        A box of states whose cells are also proved to reach the ellipsoid (two-state plants;
        see :func:`certnet.verify.closed_loop`).
    plane : (int, int)
        The two states drawn (the others at x*).
    quick : bool
        Smoke test: a smaller cell budget and fewer samples.
    seed : int
        Seed of the shape search and of the sampled check.
    steps : int
        Steps of the sampled check and of the basin simulation.
    recheck : str
        Markdown telling how to re-prove ``closed_loop_certificate.json``.

    Returns
    -------
    Section
        Text (region in the plant's units, what it means, checks), metrics ``closed_loop_*``,
        the certificate file, the plot and the region to draw; when nothing is certified the
        text says so and why.
    """
    head = "## Closed-loop certificate (the real plant)"
    t0 = time.perf_counter()
    budget = {"max_cells": QUICK_CELLS, "max_cell_steps": QUICK_CELL_STEPS} if quick else {}
    cert = cn.verify.closed_loop(plant, net, x_eq=x_eq, seed=seed, extend=extend, **budget)
    seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "closed_loop_certified": bool(cert.certified),
        "closed_loop_method": cert.method,
        "closed_loop_seconds": seconds,
    }
    if not cert.certified:
        return Section(f"{head}\n\nNot certified: {cert.reason}.\n\n{meaning}", metrics)
    rho = cert.check(net, plant=plant)
    path = cert.save(out / "closed_loop_certificate.json")
    loop = cn.verify.ClosedLoop(plant, net)
    count = 200 if quick else 1000
    converged = sampled_check(loop, cert, count, steps, seed)
    basin = empirical_basin(loop, cert.array("x_eq"), basin_box, plane=plane,
                            n=41 if quick else 121, steps=steps)
    png = plot_region(cert, loop, out / "closed_loop_region.png", basin=basin, plane=plane,
                      seed=seed)
    P, xe = cert.array("P"), cert.array("x_eq")
    half = np.sqrt(np.diag(np.linalg.inv(P)))
    centre, P2 = region_slice(cert, plane)
    slice_area = float(cert.data.get("union_volume", np.pi / np.sqrt(np.linalg.det(P2))))
    p = loop.plant
    names, units = list(p.state_names), list(p.state_units)
    fixed = [names[k] for k in range(len(names)) if k not in plane]
    covered = coverage(cert, basin, plane)
    metrics.update({
        "closed_loop_rho": float(cert.value),
        "closed_loop_roa_volume": float(cert.data["roa_volume"]),
        "closed_loop_union_volume": float(cert.data.get("union_volume",
                                                        cert.data["roa_volume"])),
        "closed_loop_half_widths": half.tolist(),
        "closed_loop_sampled_converged": converged,
        "closed_loop_basin_area": basin["area"],
        "closed_loop_basin_coverage": covered,
    })
    i, j = plane
    lines = [
        head,
        "",
        "| kind | method | ρ (decrease factor) | re-checked (float64) | region volume | cells "
        "| time (s) |",
        "|---|---|---|---|---|---|---|",
        f"| {cert.kind} | {cert.method} | {cert.value:.10g} | {rho:.10g} | "
        f"{cert.data['roa_volume']:.4g} | {cert.solver.get('cells', 0)} | {seconds:.1f} |",
        "",
        "Certified region {x : (x − x*)ᵀ P (x − x*) ≤ 1} around x* = "
        f"{np.array2string(xe, precision=5)}; its half-width along each state:",
        "",
        "| state | half-width |",
        "|---|---|",
        *(f"| {nm} | ±{h:.4g} {u} |" for nm, h, u in zip(names, half, units, strict=True)),
        "",
        *([f"Beyond it, {len(cert.data['extension']['lo'])} cells of the box "
           f"{np.array2string(cert.data['extension']['box'][0], precision=3)} … "
           f"{np.array2string(cert.data['extension']['box'][1], precision=3)} are proved to "
           "reach it (each cell's image after k steps lies in the ellipsoid or in cells proved "
           f"before it): the certified region is their union, of area ≥ "
           f"{cert.data['union_volume']:.4g}.", ""] if "extension" in cert.data else []),
        meaning,
        "",
        f"Sampled check (not a proof): {converged:.1%} of {count} states in the region "
        f"(half of them on its boundary) stay in it and end within 10⁻³ of x* after {steps} "
        f"steps of the real loop. Simulated basin on the fixed grid "
        f"{names[i]} ∈ [{basin_box[0]:.3g}, {basin_box[1]:.3g}], "
        f"{names[j]} ∈ [{basin_box[2]:.3g}, {basin_box[3]:.3g}]"
        + (f" ({', '.join(fixed)} at x*)" if fixed else "")
        + f": area {basin['area']:.4g}; the certified region (area ≥ {slice_area:.4g}) holds "
        f"{covered:.1%} of its grid states. The certificate is in "
        f"`closed_loop_certificate.json`; {recheck}",
    ]
    label = "certified region" + (f" (slice, {', '.join(fixed)} at x*)" if fixed else "")
    return Section("\n".join(lines), metrics,
                   images=[("Region of attraction proved on the real loop, over the simulated "
                            "basin", png.name)],
                   files=[path, png], regions=[Region(centre, P2, label)])


def draw_region(ax: Any, region: Region, color: str = "C3") -> None:
    """Draw the ellipse of ``region`` on the matplotlib axes ``ax``."""
    t = np.linspace(0.0, 2.0 * np.pi, 300)
    L = np.linalg.cholesky(np.asarray(region.P, dtype=np.float64))
    ell = np.asarray(region.center, dtype=np.float64)[:, None] + np.linalg.solve(
        L.T, np.stack([np.cos(t), np.sin(t)])
    )
    ax.fill(ell[0], ell[1], color=color, alpha=0.25, lw=0)
    ax.plot(ell[0], ell[1], color=color, lw=1.5, label=region.label)
