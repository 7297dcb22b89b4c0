"""What people look at: the certified region drawn over the simulated basin of the real loop."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from certnet.verify.certificate import Certificate
from certnet.verify.loop_model import ClosedLoop

__all__ = ["empirical_basin", "region_samples", "region_slice", "plot_region", "certified_mask",
           "coverage"]


def region_samples(cert: Certificate, count: int, seed: int = 0) -> np.ndarray:
    """``count`` states of a certificate's region {δxᵀPδx ≤ 1} (count, n): half on its
    boundary, half uniform inside (for sampled checks of the real loop)."""
    rng = np.random.default_rng(seed)
    P, x0 = cert.array("P"), cert.array("x_eq")
    n = len(x0)
    u = rng.standard_normal((count, n))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    r = np.concatenate([np.ones(count // 2), rng.uniform(0, 1, count - count // 2) ** (1 / n)])
    return x0 + np.linalg.solve(np.linalg.cholesky(P).T, (u * r[:, None]).T).T


def empirical_basin(loop: ClosedLoop, x_eq: np.ndarray, box: Any, *, plane=(0, 1),
                    n: int = 121, steps: int = 1500, tol: float = 1e-3) -> dict:
    """Simulate a grid of starts in a plane of states and mark those that converge.

    Parameters
    ----------
    loop : ClosedLoop
        The real loop (its plant's own ``update``).
    x_eq : ndarray (n,)
        The equilibrium; the states outside ``plane`` start there.
    box : (lo₀, hi₀, lo₁, hi₁)
        The grid's extent in the plane's two states (their units), fixed by the caller — not
        scaled with any certificate.
    plane : (int, int)
        The two states of the grid.
    n : int
        Grid points per axis.
    steps : int
        Steps simulated; converged means |x_T − x*|∞ < ``tol`` at the end.

    Returns
    -------
    dict
        ``axes`` (two arrays), ``converged`` (n, n) bool, ``area`` (cells converged × cell
        area), ``box``. A sample, not a certificate.
    """
    i, j = plane
    a = np.linspace(box[0], box[1], n)
    b = np.linspace(box[2], box[3], n)
    A, B = np.meshgrid(a, b, indexing="ij")
    x0 = np.repeat(np.asarray(x_eq, dtype=np.float64)[None], n * n, axis=0)
    x0[:, i], x0[:, j] = A.ravel(), B.ravel()
    xt = loop.simulate(x0, steps)
    ok = (np.abs(xt - x_eq).max(axis=1) < tol).reshape(n, n)
    cell = (a[1] - a[0]) * (b[1] - b[0])
    return {"axes": (a, b), "converged": ok, "area": float(ok.sum() * cell), "box": tuple(box)}


def certified_mask(cert: Certificate, x: np.ndarray) -> np.ndarray:
    """Which states (rows of x) lie in the certified region (the ellipsoid, or a proved cell)."""
    P, x0 = cert.array("P"), cert.array("x_eq")
    d = np.asarray(x, dtype=np.float64) - x0
    inside = np.einsum("bi,ij,bj->b", d, P, d) <= 1.0
    ext = cert.data.get("extension")
    if ext is not None:
        for a, b in zip(np.asarray(ext["lo"]), np.asarray(ext["hi"]), strict=True):
            inside |= np.all((x >= a) & (x <= b), axis=1)
    return inside


def coverage(cert: Certificate, basin: dict, plane=(0, 1)) -> float:
    """Share of the simulated basin's grid states that the certificate covers (states outside
    ``plane`` at x*)."""
    a, b = basin["axes"]
    A, B = np.meshgrid(a, b, indexing="ij")
    x = np.repeat(cert.array("x_eq")[None], A.size, axis=0)
    x[:, plane[0]], x[:, plane[1]] = A.ravel(), B.ravel()
    ok = basin["converged"].ravel()
    return float((certified_mask(cert, x) & ok).sum() / max(ok.sum(), 1))


def region_slice(cert: Certificate, plane=(0, 1)) -> tuple[np.ndarray, np.ndarray]:
    """The certified ellipsoid's slice in ``plane`` (the other states at x*): (centre, P₂)."""
    P, x0 = cert.array("P"), cert.array("x_eq")
    idx = list(plane)
    return x0[idx], P[np.ix_(idx, idx)]


def _ellipse(centre: np.ndarray, P2: np.ndarray, points: int = 400) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, points)
    L = np.linalg.cholesky(P2)
    return centre[:, None] + np.linalg.solve(L.T, np.stack([np.cos(t), np.sin(t)]))


def plot_region(cert: Certificate, loop: ClosedLoop, path: str | os.PathLike, *,
                box: Any = None, plane=(0, 1), basin: dict | None = None, n: int = 121,
                steps: int = 1500, trajectories: int = 12, seed: int = 0) -> Path:
    """Write a PNG: the simulated basin (shaded), the certified region, a few trajectories.

    Parameters
    ----------
    cert : Certificate
        A certified ``closed_loop`` stability certificate of ``loop``.
    loop : ClosedLoop
    path : path-like
        The PNG to write.
    box : (lo₀, hi₀, lo₁, hi₁), optional
        The grid's extent (default: 3× the region's slice around x*).
    plane : (int, int)
        The two states drawn (others at x*).
    basin : dict, optional
        A result of :func:`empirical_basin` to reuse (its box is then the plot's).

    Raises
    ------
    ValueError
        Not a certified region-of-attraction certificate.
    """
    if cert.kind != "stability" or not cert.certified or "P" not in cert.data:
        raise ValueError("plot_region needs a certified stability certificate with a region "
                         "(cn.verify.closed_loop(plant, net))")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x0 = cert.array("x_eq")
    centre, P2 = region_slice(cert, plane)
    ell = _ellipse(centre, P2)
    if basin is None:
        if box is None:
            r = 3.0 * np.abs(ell - centre[:, None]).max(axis=1)
            box = (centre[0] - r[0], centre[0] + r[0], centre[1] - r[1], centre[1] + r[1])
        basin = empirical_basin(loop, x0, box, plane=plane, n=n, steps=steps)
    box = basin["box"]
    a, b = basin["axes"]
    fig, ax = plt.subplots(figsize=(6.4, 5))
    ax.contourf(a, b, basin["converged"].T.astype(float), levels=[0.5, 1.5], colors=["#cfe8cf"])
    rng = np.random.default_rng(seed)
    starts = np.repeat(x0[None], trajectories, axis=0)
    starts[:, plane[0]] = rng.uniform(box[0], box[1], trajectories)
    starts[:, plane[1]] = rng.uniform(box[2], box[3], trajectories)
    import torch

    xs = [starts]
    x = torch.as_tensor(starts)
    with torch.no_grad():
        for _ in range(min(steps, 400)):
            x = loop.step(x)
            xs.append(x.numpy())
    tr = np.stack(xs, 1)
    for k in range(trajectories):
        ax.plot(tr[k, :, plane[0]], tr[k, :, plane[1]], lw=0.7, color="0.45")
    ext = cert.data.get("extension")
    if ext is not None and len(x0) == 2:
        from matplotlib.patches import Rectangle

        for a, b in zip(np.asarray(ext["lo"]), np.asarray(ext["hi"]), strict=True):
            ax.add_patch(Rectangle((a[plane[0]], a[plane[1]]), b[plane[0]] - a[plane[0]],
                                   b[plane[1]] - a[plane[1]], color="C0", alpha=0.35, lw=0))
        ax.plot([], [], color="C0", alpha=0.5, lw=8,
                label=f"cells proved to reach it (union ≥ {cert.data['union_volume']:.3g})")
    ax.fill(ell[0], ell[1], color="C3", alpha=0.25, lw=0)
    ax.plot(ell[0], ell[1], color="C3", lw=2,
            label=f"certified ellipsoid (volume {cert.data['roa_volume']:.3g})")
    ax.plot([], [], color="#cfe8cf", lw=8,
            label=f"simulated basin in the box (area {basin['area']:.3g})")
    ax.plot(*centre, "k+", ms=10)
    names = loop.plant.state_names
    units = loop.plant.state_units
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_xlabel(f"{names[plane[0]]} ({units[plane[0]]})" if units[plane[0]] else
                  names[plane[0]])
    ax.set_ylabel(f"{names[plane[1]]} ({units[plane[1]]})" if units[plane[1]] else
                  names[plane[1]])
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{type(loop.plant).__name__}: region of attraction proved on the real loop")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
