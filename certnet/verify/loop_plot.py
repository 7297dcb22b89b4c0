"""Phase portrait of a two-state closed loop: trajectories, certified ROA, empirical basin."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from certnet.nn.extract import extract_layers
from certnet.verify.certificate import Certificate

__all__ = ["simulate", "empirical_basin", "plot_roa"]


def simulate(plant: Any, net: Any, x0: np.ndarray, steps: int) -> np.ndarray:
    """Closed-loop states x_0 … x_T of u = π(x) on the plant (float64), shape (B, T+1, n)."""
    stack = extract_layers(net)
    x = torch.as_tensor(np.atleast_2d(x0), dtype=torch.float64)
    out = [x]
    for _ in range(steps):
        u = torch.from_numpy(stack.forward(x.numpy()))
        x = plant.step(x, u)
        out.append(x)
    return torch.stack(out, dim=1).numpy()


def empirical_basin(
    plant: Any,
    net: Any,
    box: tuple[float, float, float, float],
    *,
    n: int = 101,
    steps: int = 1500,
    tol: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Grid of starts in ``box`` = (x0_min, x0_max, x1_min, x1_max) simulated ``steps`` steps.

    Returns the grid axes, the boolean "converged" mask (|x_T − x*| < tol) and the basin area
    (cell count × cell area, in the states' units). It is a sample, not a certificate.
    """
    a = np.linspace(box[0], box[1], n)
    b = np.linspace(box[2], box[3], n)
    A, B = np.meshgrid(a, b, indexing="ij")
    x0 = np.stack([A.ravel(), B.ravel()], axis=1)
    xe = np.asarray(plant.x_eq, dtype=np.float64)
    stack = extract_layers(net)
    x = torch.as_tensor(x0, dtype=torch.float64)
    for _ in range(steps):
        x = plant.step(x, torch.from_numpy(stack.forward(x.numpy())))
        x = torch.nan_to_num(x, nan=1e6).clamp(-1e6, 1e6)
    ok = (np.abs(x.numpy() - xe).max(axis=1) < tol).reshape(n, n)
    cell = (a[1] - a[0]) * (b[1] - b[0])
    return a, b, ok, float(ok.sum() * cell)


def plot_roa(
    cert: Certificate,
    plant: Any,
    net: Any,
    path: str | os.PathLike,
    *,
    box: tuple[float, float, float, float] | None = None,
    n: int = 81,
    steps: int = 1500,
    trajectories: int = 12,
    seed: int = 0,
) -> Path:
    """Write a PNG: empirical basin (shaded), certified ROA ellipse, sample trajectories.

    Raises
    ------
    ValueError
        The certificate has no ellipsoid (not a certified sector stability certificate) or the
        plant does not have two states.
    """
    if cert.kind != "stability" or not cert.certified or "P" not in cert.data:
        raise ValueError(
            "plot_roa needs a certified stability certificate with an ellipsoid "
            "(closed_loop(..., method='sector'))"
        )
    P = cert.array("P")
    if P.shape != (2, 2):
        raise ValueError(f"plot_roa draws two-state loops; this one has {P.shape[0]} states")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xe = cert.array("x_eq")
    L = np.linalg.cholesky(P)
    t = np.linspace(0, 2 * np.pi, 400)
    ell = xe[:, None] + np.linalg.solve(L.T, np.stack([np.cos(t), np.sin(t)]))
    if box is None:
        r = 2.5 * np.abs(ell - xe[:, None]).max(axis=1)
        box = (xe[0] - r[0], xe[0] + r[0], xe[1] - r[1], xe[1] + r[1])
    a, b, ok, area = empirical_basin(plant, net, box, n=n, steps=steps)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(a, b, ok.T.astype(float), levels=[0.5, 1.5], colors=["#cfe8cf"])
    rng = np.random.default_rng(seed)
    starts = np.stack(
        [rng.uniform(box[0], box[1], trajectories), rng.uniform(box[2], box[3], trajectories)],
        axis=1,
    )
    for tr in simulate(plant, net, starts, min(steps, 400)):
        ax.plot(tr[:, 0], tr[:, 1], lw=0.7, color="0.4")
    ax.plot(
        ell[0],
        ell[1],
        color="C3",
        lw=2,
        label=f"certified ROA (area {cert.data['roa_volume']:.3g})",
    )
    ax.plot([], [], color="#cfe8cf", lw=8, label=f"empirical basin (area {area:.3g})")
    names = getattr(plant, "state_names", ("x0", "x1"))
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"closed loop: {cert.method}, ρ = {cert.value:.6f}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
