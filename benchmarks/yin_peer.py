"""Yin, Seiler & Arcak's pendulum ROA program in cvxpy: the peer of the closed-loop benchmark.

He Yin, Peter Seiler, Murat Arcak, "Stability analysis using quadratic constraints for systems
with neural network controllers", IEEE TAC 67(4), 2022 (arXiv:2006.07579). Their MATLAB (CVX +
MOSEK) scripts ``Inverted_Pendulum_{no,control}_saturation/Pendulum_sin_local.m`` are rebuilt
here constraint by constraint, in their variable order y = (ζ, w, q) with ζ = (x, ξ):

* plant  x⁺ = AG x + BG1 q + BG2 u, q = θ − sin θ (g=10, m=0.15, l=0.5, μ=0.05, Euler dt=0.02);
  with saturation u = sat(W3 w2) at ±0.7 is a third "neuron";
* network 2-32-32-1 tanh, no biases, x* = 0, so every equilibrium pre-activation is 0;
* local sectors [α, 1] of each neuron from the first-layer box |v1| ≤ Δv (0.5, or 0.1 with
  saturation) propagated by intervals (midpoint ± |W| radius), α = min(φ(v̄)/v̄, φ(v̲)/v̲), the
  saturation's sector included; multipliers T = diag(t) ≥ 0;
* sector IQC for q on |θ| ≤ x1bound (2.5 → slope 0.7606; 0.73 → (0.73 − sin 0.73)/0.73), λ1 ≥ 0;
* "off-by-one" IQC: their filter ξ⁺ = ξ + dt (q − L_slope θ) (Apsi = 0, Euler-discretised), output
  (ξ + L_slope θ − q, q), M = [[0, 1], [1, 0]], λ2 ≥ 0, L_slope = 2 or 1 − cos 0.73;
* V(ζ) = ζᵀPζ, P ⪰ 1e-8 I; LMI  QV + Qφ + Qsec + Qoff ⪯ −1e-10 I;
* containment of the whole (x, ξ) ellipsoid ζᵀPζ ≤ 1 in every slab |W1_i x| ≤ Δv and in
  |θ| ≤ x1bound (Schur-complement LMIs);
* minimise trace P_xx. Their ROA estimate is the slice at ξ = 0, {x : xᵀ P_xx x ≤ 1}, of area
  π / √det P_xx.

The literal program is infeasible: CVXOPT is right
--------------------------------------------------
The filter state ξ has a structurally zero diagonal entry in the LMI: its column of Abar is e_ξ
(their discretised Apsi is 0·dt + 1 = 1), so (AbarᵀP Abar − P)_ξξ = 0, and no other term
contains ξ² (the IQC output pairs ξ only with q; the network and the sector IQC do not see ξ).
A negative semidefinite matrix with a zero diagonal entry has a zero row. Its ξ–w2 entries
(ξ–u with saturation) are P_ξθ̇·dt/(m l²)·W3, so P_ξθ̇ = 0; its ξ–θ entry is
dt·(g/l·P_ξθ̇ − L_slope·P_ξξ), so P_ξξ = 0, which contradicts P ⪰ 1e-8 I; and the ξξ entry 0
alone contradicts ⪯ −1e-10 I. So neither script's program has a feasible point in exact
arithmetic. The violation is O(1e-10), below the solvers' tolerances, so MOSEK can return a
tolerance-feasible point. Measured (cvxpy 1.9.3, default solver options):

* CVXOPT, no saturation: "infeasible", and it stays so under every option tried (feastol 1e-6 …
  1e-12, abstol/reltol, kktsolver "robust", refinement, max_iters) and scalings of P, t, λ by
  factors 0.01 … 10. This is not a conditioning problem.
* CVXOPT, saturation: "optimal", 1.74987 at the default feastol 1e-7, but "infeasible" at
  feastol 1e-9 or with P scaled by 10. That flip is what a program infeasible only below the
  tolerance does.
* Clarabel: no saturation, NumericalError after 62 iterations (it passes trace P_xx = 0.2928,
  area ≈ 30.79, near iteration 40 and then diverges; an earlier assembly of the same LMI, equal
  algebraically, was reported to stop "optimal_inaccurate" at 30.78). Saturation: "optimal",
  1.74987.
* SCS (eps 1e-4): "optimal", 32.02 / 1.877, at points violating the LMI by 4e-5 / 3e-3.
* Every point CVXOPT or Clarabel accepts has λ2, P_xξ, P_ξξ at noise level (1e-6 … 1e-5) and
  re-checks with λmax(LMI) = +3e-10 … +4e-10. No point can re-check below 0: the ξξ entry is 0.

No scaling or solver option is applied here. Every program goes to the solver exactly as their
CVX code states it, and the result reports the solver's status.

The exact reading of their number: the sector-only program
-----------------------------------------------------------
With the margins set to 0, the feasible set is the face P_xξ = P_ξξ = 0, λ2 = 0. On it the LMI and
the containment constraints are exactly those of the program *without* the off-by-one IQC
(ζ = x, ``offbyone=False``). That program is well posed, and both CVXOPT and Clarabel solve it
cleanly; Clarabel's no-saturation point satisfies even the 1e-10 margin in float64. Its optimum,
30.7915 (no saturation) and 1.74987 (saturation), is the value the accepted solutions of the
literal program converge to (1.74987 both ways, to 2e-7). So the off-by-one IQC, as implemented,
adds nothing to their pendulum ROA. The sector-only program is both the exact value of their
program and "one Yin-style sector SDP": 0.3–0.6 s with CVXOPT (about 0.05 s of it cvxpy's
compilation) and 7–19 s with Clarabel, on 2 shared cores (the spread is machine load).

Every result carries a float64 re-check of the returned (P, t, λ). The LMI is rebuilt in numpy
and its largest eigenvalue taken; the check also gives P's smallest eigenvalue and the
containment constraints in Schur form (max over slabs of c P⁻¹ cᵀ / bound², ≤ 1 when they hold).
The sector-only optima sit on the boundary of the feasible set: the first neuron's slab is
active and the LMI has two near-zero eigenvalues. So the re-check shows tolerance-level
violations. With CVXOPT, λmax is +2.6e-10 without saturation and −4.2e-11 with it, short of
their −1e-10 margin; the containment is exceeded by 7e-9. With Clarabel, the no-saturation
answer is valid (λmax −1.35e-10, containment 1 − 1.9e-8), but the saturated one is not
(λmax +4.3e-9). In short, their certificate holds to solver tolerance, and strictly only
sometimes. Simulated from 360 boundary and 360 interior points of each ellipse (3000 steps),
every start converges. The ellipses are 2.6 % and 1.9 % of the empirical basins: the whole box
±10 × ±30 (area 1200) converges without saturation, and 0.18796 of ±5 × ±25 (area 93.98,
400 × 400 grid) with it. They also minimise trace P_xx, not the ellipse's area.

Their code and weights are MIT-licensed but are *not* part of this repository: the weights are
read at run time with ``git show`` from a snapshot or clone of their repository (``repo``).

Run: ``python benchmarks/yin_peer.py`` (about 10 min on 2 cores: 200 × 200 basin grids, CVXOPT and
Clarabel, 3 repeats; ``--quick`` for a 60 × 60 grid and one repeat, ``--grid 400`` as above).
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import cvxpy as cp
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

__all__ = [
    "DEFAULT_REPO",
    "load_network",
    "yin_roa",
    "simulate",
    "empirical_basin",
    "ellipse_in_basin",
]

DEFAULT_REPO = Path(
    "/work/.mirror/heyinUCB+Stability-Analysis-using-Quadratic-Constraints-for-Systems-with-"
    "Neural-Network-Controllers/repo"
)
UPSTREAM = (
    "https://github.com/heyinUCB/"
    "Stability-Analysis-using-Quadratic-Constraints-for-Systems-with-Neural-Network-Controllers"
)
WEIGHTS = "Inverted_Pendulum_no_saturation/Wb_s32_tanh"  # the saturation folder holds the same

G, MASS, LENGTH, MU, DT = 10.0, 0.15, 0.5, 0.05, 0.02
UMAX = 0.7
P_MARGIN, LMI_MARGIN = 1e-8, 1e-10  # P ⪰ 1e-8 I and LMI ⪯ −1e-10 I, as in their code
BOXES = {False: (10.0, 30.0), True: (5.0, 25.0)}  # empirical-basin half-widths (θ, θ̇)


@dataclass(frozen=True)
class _Setting:
    """The per-variant constants of their two scripts."""

    dv: float  # first-layer box |W1 x| ≤ dv
    x1bound: float  # |θ| ≤ x1bound
    l_slope: float  # off-by-one IQC slope bound of θ − sin θ
    l_sector: float  # sector bound of θ − sin θ on |θ| ≤ x1bound


SETTINGS = {
    False: _Setting(dv=0.5, x1bound=2.5, l_slope=2.0, l_sector=0.7606),
    True: _Setting(
        dv=0.1,
        x1bound=0.73,
        l_slope=1 - math.cos(0.73),
        l_sector=(0.73 - math.sin(0.73)) / 0.73,
    ),
}


def load_network(repo: str | Path = DEFAULT_REPO) -> list[np.ndarray]:
    """Read their 2-32-32-1 tanh pendulum controller from a git snapshot of their repository.

    Parameters
    ----------
    repo : str or Path
        A git directory (bare snapshot or clone) of heyinUCB's repository; read with
        ``git show HEAD:...``, nothing is copied.

    Returns
    -------
    list of np.ndarray
        ``[W1 (32, 2), W2 (32, 32), W3 (1, 32)]`` in float64 (the network has no biases).

    Raises
    ------
    FileNotFoundError
        If ``repo`` is not a git directory holding the weights.
    """
    weights = []
    for k in (1, 2, 3):
        spec = f"HEAD:{WEIGHTS}/W{k}.csv"
        run = subprocess.run(
            ["git", "-C", str(repo), "show", spec], capture_output=True, text=True, check=False
        )
        if run.returncode != 0:
            raise FileNotFoundError(
                f"cannot read {spec} from {repo}: {run.stderr.strip()}\n"
                f"Clone their repository (git clone {UPSTREAM}) and pass its path as `repo` "
                "(--repo on the command line); the weights are read from it at run time and "
                "must not be copied into this repository."
            )
        weights.append(np.loadtxt(io.StringIO(run.stdout), delimiter=",", ndmin=2))
    return weights


def _sat(v: np.ndarray) -> np.ndarray:
    """Their sat.m at ±0.7."""
    return np.clip(v, -UMAX, UMAX)


def _sectors(weights: list[np.ndarray], saturated: bool, dv: float) -> np.ndarray:
    """Local sector slopes α (upper slope β = 1) of every neuron, their interval propagation.

    x* = 0 and no biases, so all equilibrium pre-activations are 0 and α = min(φ(v̄)/v̄, φ(v̲)/v̲).
    """
    W1, W2, W3 = weights
    layers = [(W2, np.tanh)] + ([(W3, _sat)] if saturated else [])
    lo, up = np.full(W1.shape[0], -dv), np.full(W1.shape[0], dv)
    alphas = [np.minimum(np.tanh(up) / up, np.tanh(lo) / lo)]
    for W, phi in layers:
        w_lo, w_up = np.tanh(lo), np.tanh(up)
        mid, rad = W @ (w_up + w_lo) / 2, np.abs(W) @ np.abs(w_up - w_lo) / 2
        lo, up = mid - rad, mid + rad
        alphas.append(np.minimum(phi(up) / up, phi(lo) / lo))
    return np.concatenate(alphas)


@dataclass(frozen=True)
class _Program:
    """Constant matrices of their LMI in y = (ζ, w, q); rows are linear forms in y."""

    nzeta: int
    alpha: np.ndarray  # sector slopes of the neurons (and of the saturation)
    step: np.ndarray  # ζ⁺ = step @ y   ([Abar Bbar] RV in their code)
    zeta: np.ndarray  # ζ = zeta @ y
    nn_a: np.ndarray  # β v − w (β = 1), one row per neuron
    nn_b: np.ndarray  # w − α v
    sector: np.ndarray  # (L_sector θ − q, q)
    offbyone: np.ndarray | None  # (ξ + L_slope θ − q, q) = [Cbar Dbar] RV
    slabs: np.ndarray  # rows c with constraint |c ζ| ≤ bound on the ellipsoid
    bounds: np.ndarray


def _program(weights: list[np.ndarray], saturated: bool, offbyone: bool) -> _Program:
    W1, W2, W3 = weights
    s = SETTINGS[saturated]
    alpha = _sectors(weights, saturated, s.dv)
    n1, n2, nphi = W1.shape[0], W2.shape[0], alpha.size
    nzeta = 3 if offbyone else 2
    n = nzeta + nphi + 1
    eye = np.eye(n)
    zeta, w, q = eye[:nzeta], eye[nzeta : nzeta + nphi], eye[-1:]
    theta = eye[:1]
    u = w[n1 + n2 :] if saturated else W3 @ w[n1 : n1 + n2]
    v = np.vstack([W1 @ zeta[:2], W2 @ w[:n1]] + ([W3 @ w[n1 : n1 + n2]] if saturated else []))

    AG = np.array([[1.0, DT], [G / LENGTH * DT, 1 - MU / (MASS * LENGTH**2) * DT]])
    BG1 = np.array([[0.0], [-G / LENGTH * DT]])
    BG2 = np.array([[0.0], [DT / (MASS * LENGTH**2)]])
    x_next = AG @ zeta[:2] + BG1 @ q + BG2 @ u
    off = None
    if offbyone:  # ξ⁺ = Apsi ξ + Bpsi1 θ + Bpsi2 q with Apsi = 0·dt + 1
        xi_next = zeta[2:] + DT * (q - s.l_slope * theta)
        x_next = np.vstack([x_next, xi_next])
        off = np.vstack([zeta[2:] + s.l_slope * theta - q, q])

    slabs = np.zeros((n1 + 1, nzeta))
    slabs[:n1, :2] = W1
    slabs[n1, 0] = 1.0
    return _Program(
        nzeta=nzeta,
        alpha=alpha,
        step=x_next,
        zeta=zeta,
        nn_a=v - w,
        nn_b=w - alpha[:, None] * v,
        sector=np.vstack([s.l_sector * theta - q, q]),
        offbyone=off,
        slabs=slabs,
        bounds=np.append(np.full(n1, s.dv), s.x1bound),
    )


def _lmi(prog: _Program, P, T, lam1, lam2):
    """QV + Qφ + Qsec + Qoff of their code; numpy arrays or cvxpy expressions alike."""

    def pair(rows):  # quadratic form 2·(r0 y)(r1 y) of the multiplier M = [[0, 1], [1, 0]]
        return rows[:1].T @ rows[1:] + rows[1:].T @ rows[:1]

    Q = prog.step.T @ P @ prog.step - prog.zeta.T @ P @ prog.zeta
    Q = Q + prog.nn_a.T @ T @ prog.nn_b + prog.nn_b.T @ T @ prog.nn_a + lam1 * pair(prog.sector)
    if prog.offbyone is not None:
        Q = Q + lam2 * pair(prog.offbyone)
    return Q


def _recheck(prog: _Program, P: np.ndarray, t: np.ndarray, lam1: float, lam2: float) -> dict:
    """Float64 re-check of the returned certificate, independent of the solver's residuals."""
    Q = _lmi(prog, P, np.diag(t), lam1, lam2)
    lmi_max = float(np.linalg.eigvalsh((Q + Q.T) / 2)[-1])
    p_min = float(np.linalg.eigvalsh(P)[0])
    if p_min > 0:
        reach = np.einsum("ij,ji->i", prog.slabs, np.linalg.solve(P, prog.slabs.T))
        containment = float(np.max(reach / prog.bounds**2))
    else:
        containment = math.inf
    multipliers_ok = bool(t.min() >= 0 and lam1 >= 0 and lam2 >= 0)
    return {
        "lmi_max_eig": lmi_max,
        "lmi_margin_ok": lmi_max <= -LMI_MARGIN,
        "p_min_eig": p_min,
        "containment_max": containment,
        "multipliers_ok": multipliers_ok,
        "valid": lmi_max < 0 and p_min > 0 and containment <= 1 and multipliers_ok,
    }


def _solve_once(
    weights: list[np.ndarray], saturated: bool, offbyone: bool, solver: str
) -> tuple[_Program, dict]:
    """Build their SDP from the weights in cvxpy and solve it once (both timed)."""
    t0 = time.perf_counter()
    prog = _program(weights, saturated, offbyone)
    nz, nphi = prog.nzeta, prog.alpha.size
    P = cp.Variable((nz, nz), symmetric=True)
    t = cp.Variable(nphi, nonneg=True)
    lam1 = cp.Variable(nonneg=True)
    lam2 = cp.Variable(nonneg=True) if prog.offbyone is not None else None
    Q = _lmi(prog, P, cp.diag(t), lam1, lam2)
    cons = [P >> P_MARGIN * np.eye(nz), (Q + Q.T) / 2 << -LMI_MARGIN * np.eye(Q.shape[0])]
    for c, bound in zip(prog.slabs, prog.bounds, strict=True):
        c = c[None, :]
        cons.append(cp.bmat([[np.array([[bound**2]]), c], [c.T, P]]) >> 0)
    problem = cp.Problem(cp.Minimize(cp.trace(P[:2, :2])), cons)
    error = None
    try:
        problem.solve(solver=solver)
        status = problem.status
    except cp.error.SolverError as err:
        status, error = "solver_error", str(err)
    return prog, {
        "status": status,
        "error": error,
        "seconds": time.perf_counter() - t0,
        "P": P.value,
        "t": t.value,
        "lambda_sector": None if lam1.value is None else float(lam1.value),
        "lambda_offbyone": None if lam2 is None or lam2.value is None else float(lam2.value),
    }


def yin_roa(
    weights: list[np.ndarray],
    saturated: bool,
    *,
    offbyone: bool = True,
    solver: str = "CVXOPT",
    repeats: int = 1,
) -> dict:
    """Solve their ROA program (as their script states it) and re-check the answer in float64.

    Parameters
    ----------
    weights : list of np.ndarray
        ``[W1, W2, W3]`` from :func:`load_network`.
    saturated : bool
        The control-saturation script (u clipped to ±0.7, Δv = 0.1, x1bound = 0.73) instead of
        the unsaturated one (Δv = 0.5, x1bound = 2.5).
    offbyone : bool
        Include their off-by-one IQC and its filter state ξ (their program). ``False`` keeps only
        the sector IQCs, with ζ = x (see the module docstring for why this is also the exact
        value of their program).
    solver : str
        A cvxpy solver name (CVXOPT, CLARABEL, SCS, ...), with its default options.
    repeats : int
        Build and solve this many times; ``seconds`` is the median wall time (the last solve's
        answer is returned).

    Returns
    -------
    dict
        ``status`` (cvxpy's, or ``"solver_error"`` with the message in ``error``), ``solver``,
        ``seconds`` (median of ``seconds_all``: building the program from the weights plus
        solving, ``time.perf_counter``), ``P`` (full P, None without a solution), ``P_x`` (its
        x-block), ``t`` (the neurons' multipliers), ``lambda_sector``, ``lambda_offbyone``,
        ``area`` (π/√det P_x; nan without a solution), ``dv``, ``x1bound``, ``alpha`` (the
        neurons' sector slopes), ``recheck`` (dict: ``lmi_max_eig``, ``lmi_margin_ok`` (≤ −1e-10),
        ``p_min_eig``, ``containment_max`` (≤ 1 when every containment holds),
        ``multipliers_ok``, ``valid`` (λmax < 0, P ≻ 0, containment ≤ 1, multipliers ≥ 0);
        None without a solution) and ``lmi_max_eig`` (nan without a solution).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    s = SETTINGS[saturated]
    solves = [_solve_once(weights, saturated, offbyone, solver) for _ in range(repeats)]
    prog, last = solves[-1]
    times = [r["seconds"] for _, r in solves]
    out = {
        **last,
        "variant": "saturation" if saturated else "no saturation",
        "offbyone": offbyone,
        "solver": solver,
        "seconds": statistics.median(times),
        "seconds_all": times,
        "dv": s.dv,
        "x1bound": s.x1bound,
        "alpha": prog.alpha,
        "P_x": None,
        "area": math.nan,
        "recheck": None,
        "lmi_max_eig": math.nan,
    }
    P = out["P"]
    if P is not None:
        out["P_x"] = P[:2, :2]
        det = np.linalg.det(P[:2, :2])
        out["area"] = math.pi / math.sqrt(det) if det > 0 else math.inf  # else unbounded
        lam2 = out["lambda_offbyone"] if offbyone else 0.0
        out["recheck"] = _recheck(prog, P, out["t"], out["lambda_sector"], lam2)
        out["lmi_max_eig"] = out["recheck"]["lmi_max_eig"]
    return out


def simulate(weights: list[np.ndarray], x0: np.ndarray, steps: int, saturated: bool) -> np.ndarray:
    """Their closed loop (nnclosedloop.m), vectorised in float64: the states after ``steps`` steps.

    x⁺ = x + dt·(θ̇, g/l sin θ − μ/(m l²) θ̇ + u/(m l²)), u = W3 tanh(W2 tanh(W1 x)), clipped to
    ±0.7 when ``saturated``. (Their ``Nstep`` counts stored states: Nstep − 1 steps.)

    Parameters
    ----------
    weights : list of np.ndarray
        ``[W1, W2, W3]``.
    x0 : np.ndarray, shape (B, 2)
        Initial states (θ, θ̇).
    steps : int
        Number of Euler steps.
    saturated : bool
        Clip u to ±0.7 (their ``sat``).

    Returns
    -------
    np.ndarray, shape (B, 2)
        Final states.
    """
    W1, W2, W3 = (torch.as_tensor(w, dtype=torch.float64) for w in weights)
    x = torch.as_tensor(np.atleast_2d(x0), dtype=torch.float64)
    inertia = MASS * LENGTH**2
    with torch.no_grad():
        for _ in range(steps):
            u = (torch.tanh(torch.tanh(x @ W1.T) @ W2.T) @ W3.T)[:, 0]
            if saturated:
                u = u.clamp(-UMAX, UMAX)
            th, om = x[:, 0], x[:, 1]
            acc = G / LENGTH * torch.sin(th) - MU / inertia * om + 1 / inertia * u
            x = torch.stack([th + om * DT, om + acc * DT], dim=1)
    return x.numpy()


def empirical_basin(
    weights: list[np.ndarray],
    saturated: bool,
    box: tuple[float, float] | None = None,
    grid: tuple[int, int] = (400, 400),
    steps: int = 3000,
    tol: float = 1e-3,
) -> dict:
    """Grid estimate of the closed loop's basin of attraction of x* = 0 (a sample, no proof).

    Parameters
    ----------
    weights : list of np.ndarray
        ``[W1, W2, W3]``.
    saturated : bool
        Their saturated loop.
    box : (float, float), optional
        Half-widths (θmax, θ̇max) of the grid; default (10, 30), or (5, 25) with saturation.
    grid : (int, int)
        Points per axis (θ, θ̇), end points included.
    steps : int
        Euler steps simulated from every grid point (3000 = 60 s).
    tol : float
        A start converged if max(|θ_T|, |θ̇_T|) < tol.

    Returns
    -------
    dict
        ``theta``, ``theta_dot`` (axes), ``mask`` (converged, shape ``grid``), ``fraction``,
        ``area`` (fraction × box area), ``box``, ``grid``, ``steps``, ``tol``.
    """
    box = BOXES[saturated] if box is None else box
    th = np.linspace(-box[0], box[0], grid[0])
    om = np.linspace(-box[1], box[1], grid[1])
    A, B = np.meshgrid(th, om, indexing="ij")
    xT = simulate(weights, np.stack([A.ravel(), B.ravel()], axis=1), steps, saturated)
    mask = (np.abs(xT).max(axis=1) < tol).reshape(grid)  # nan compares False: not converged
    fraction = float(mask.mean())
    return {
        "theta": th,
        "theta_dot": om,
        "mask": mask,
        "fraction": fraction,
        "area": fraction * 4 * box[0] * box[1],
        "box": box,
        "grid": grid,
        "steps": steps,
        "tol": tol,
    }


def ellipse_in_basin(
    weights: list[np.ndarray],
    saturated: bool,
    P_x: np.ndarray,
    points: int = 360,
    steps: int = 3000,
    tol: float = 1e-3,
    seed: int = 0,
) -> dict:
    """Simulate from the boundary of {x : xᵀ P_x x ≤ 1} and from random points inside it.

    Returns
    -------
    dict
        ``points`` (starts: ``points`` on the boundary, as many uniform inside), ``converged``
        (how many end within ``tol`` of 0 after ``steps`` steps) and ``inside`` (all did).
    """
    rng = np.random.default_rng(seed)
    phase = np.linspace(0, 2 * np.pi, points, endpoint=False)
    circle = np.stack([np.cos(phase), np.sin(phase)], axis=1)
    disc = rng.normal(size=(points, 2))
    disc *= np.sqrt(rng.uniform(size=(points, 1))) / np.linalg.norm(disc, axis=1, keepdims=True)
    # x = L⁻ᵀ z with P_x = L Lᵀ maps the unit circle / disc onto the ellipse's boundary / inside
    x0 = np.linalg.solve(np.linalg.cholesky(P_x).T, np.vstack([circle, disc]).T).T
    xT = simulate(weights, x0, steps, saturated)
    converged = int((np.abs(xT).max(axis=1) < tol).sum())
    return {"points": len(x0), "converged": converged, "inside": converged == len(x0)}


def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="git dir of their repo")
    ap.add_argument("--solvers", default="CVXOPT,CLARABEL", help="comma-separated cvxpy names")
    ap.add_argument("--repeats", type=int, default=3, help="solves per program (median time)")
    ap.add_argument("--grid", type=int, default=200, help="basin grid points per axis")
    ap.add_argument("--quick", action="store_true", help="60×60 basin grid, one repeat")
    args = ap.parse_args()
    repeats, n = (1, 60) if args.quick else (args.repeats, args.grid)
    weights = load_network(args.repo)
    basins = {sat: empirical_basin(weights, sat, grid=(n, n)) for sat in (False, True)}

    sdp = Table(
        title="Yin–Seiler–Arcak pendulum ROA program (cvxpy)",
        caption="λmax, containment − 1, valid: float64 re-check of the returned P, t, λ; "
        "ellipse ⊂ basin: starts on its boundary and inside it that converge",
    )
    for col in ("variant", "IQCs", "solver", "status"):
        sdp.add_column(col)
    for col in ("area", "/ basin", "median s", "λmax(LMI)", "containment − 1", "valid"):
        sdp.add_column(col, justify="right")
    sdp.add_column("ellipse ⊂ basin", justify="right")
    for saturated in (False, True):
        for offbyone in (True, False):
            for solver in args.solvers.split(","):
                r = yin_roa(weights, saturated, offbyone=offbyone, solver=solver, repeats=repeats)
                row = [
                    r["variant"],
                    "off-by-one + sector" if offbyone else "sector",
                    solver,
                    r["status"],
                    f"{r['area']:.4f}",
                    f"{r['area'] / basins[saturated]['area']:.4f}",
                    f"{r['seconds']:.3g}",
                ]
                if r["recheck"] is None:
                    row += ["–"] * 4
                else:
                    c = r["recheck"]
                    sim = ellipse_in_basin(weights, saturated, r["P_x"])
                    row += [
                        f"{c['lmi_max_eig']:.2e}",
                        f"{c['containment_max'] - 1:+.1e}",
                        str(c["valid"]),
                        f"{sim['converged']}/{sim['points']}",
                    ]
                sdp.add_row(*row)

    emp = Table(title="Empirical basin (grid, 3000 Euler steps, tol 1e-3)")
    emp.add_column("variant")
    for col in ("box (θ, θ̇)", "grid", "fraction", "area"):
        emp.add_column(col, justify="right")
    for saturated, b in basins.items():
        emp.add_row(
            "saturation" if saturated else "no saturation",
            f"±{b['box'][0]:g} × ±{b['box'][1]:g}",
            f"{n}×{n}",
            f"{b['fraction']:.4f}",
            f"{b['area']:.2f}",
        )
    console = Console(width=max(Console().width, 170))
    console.print(sdp)
    console.print(emp)


if __name__ == "__main__":
    _main()
