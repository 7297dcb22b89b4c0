"""A local ℓ2 gain of the real closed loop: a quadratic storage proved dissipative on a region.

The loop with an additive disturbance, x⁺ = G(x) + B_d d, performance y = C_y(x − x̄), started
at the fixed point x̄. With a storage V(x) = (x − x̄)ᵀP(x − x̄) and γ² I ≻ B_dᵀPB_d,

    max_d [V(G(x) + B_d d) − γ²|d|²] = gᵀ M g,   g = G(x) − x̄,
    M = P + PB_d(γ²I − B_dᵀPB_d)⁻¹B_dᵀP

(complete the square in d), so the dissipation inequality V(x⁺) − V(x) ≤ γ²|d|² − |y|² holds for
every d exactly when h(x) = gᵀMg − V(x) + |C_y(x − x̄)|² ≤ 0. Summed from x₀ = x̄, it gives
Σ|y|² ≤ γ² Σ|d|² − V(x_T) and V(x_k) ≤ γ² Σ|d|², so for every disturbance with
Σ|d|² ≤ e the state stays in {V ≤ γ²e}: proving h ≤ 0 there (cells of :mod:`loop_bnb`, with
W = chol(M), C = C_y, and near x̄ the core test with T = (I − S)^{−½}, S the performance in
frame units) proves the gain γ for that energy.

:func:`search` takes (P, γ) from the linearised loop's bounded-real Riccati equation at
γ = f·γ_lin for f = 1.05, 1.2, 1.5, 2, 3, 5 (γ_lin its H∞ norm, certified by the KYP LMI), with
the performance weight raised by μ = 0.1 so that the inequality is strict at x̄ and the core test
has room, and returns the first γ whose region is proved; :func:`recheck` re-proves stored
data.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from certnet.errors import CertificateError
from certnet.verify.loop_bnb import MAX_CELLS, Frame, Problem, largest_radius, prove
from certnet.verify.loop_small_gain import hinf_certificate

__all__ = ["search", "recheck", "FACTORS"]

FACTORS = (1.05, 1.2, 1.5, 2.0, 3.0, 5.0)  #: γ / γ_lin tried, in order
CORE_RADIUS = 1 / 64  #: core radius, relative to the region
MARGIN = 0.1  #: the storage is solved with C_yᵀC_y (1 + μ) + μ s I, leaving the core a margin
CORE_SHARE = 0.05


def _problem(x0, P, gamma, Bd, Cy, r_eq) -> tuple[Problem, float]:
    """The dissipation problem at (P, γ) and the factor its core score is multiplied by."""
    n = len(x0)
    frame = Frame.of(x0, P)
    G = gamma**2 * np.eye(Bd.shape[1]) - Bd.T @ P @ Bd
    try:
        np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        raise CertificateError(f"γ² I − B_dᵀPB_d is not positive definite at γ = {gamma!r}") \
            from None
    M = P + P @ Bd @ np.linalg.solve(G, Bd.T @ P)
    W = np.linalg.cholesky((M + M.T) / 2)
    Ci = Cy @ frame.M  # performance in frame units
    S = Ci.T @ Ci
    ev, vec = np.linalg.eigh(np.eye(n) - (S + S.T) / 2)
    if not ev.min() > 1e-9:
        raise CertificateError("the performance output is not dominated by the storage "
                               "(I − S is not positive definite)")
    T = vec @ np.diag(ev**-0.5) @ vec.T
    kappa = float(np.linalg.cond(T))
    eta = frame.eta
    factor = (1.0 + kappa * eta / (1.0 - eta)) * (1 + 1e-12)
    return Problem(frame, W, Cy, T, float(r_eq)), factor


def _attempt(loop, x0, P, gamma, Bd, Cy, r_eq, energy, max_cells):
    problem, factor = _problem(x0, P, gamma, Bd, Cy, r_eq)
    delta = max(problem.deltas())
    R = gamma * math.sqrt(energy) + 2 * delta
    core = largest_radius(loop, problem, "core", r_out=min(R, CORE_RADIUS * R),
                          bound=1.0 / factor, max_cells=int(CORE_SHARE * max_cells))
    if not core.radius > 4 * delta or core.worst == 0:
        return None, "the core test fails at the equilibrium"
    if core.radius >= R:
        return {"radius": R, "core_radius": core.radius, "r_in": R, "cells": core.cells}, ""
    r_in = core.radius - 2 * delta
    dec = largest_radius(loop, problem, "decrease", r_in=r_in, r_out=R,
                         max_cells=max_cells - core.cells)
    if dec.radius < R:
        e_ok = max(0.0, (max(dec.radius, core.radius) - 2 * delta) / gamma) ** 2
        where = "" if dec.where is None else f" near x = {np.round(dec.where, 6).tolist()}"
        return None, (f"at γ = {gamma:.6g} the dissipation inequality is proved only for "
                      f"Σ|d|² ≤ {e_ok:.3g}{where}")
    return {"radius": R, "core_radius": core.radius, "r_in": r_in,
            "cells": core.cells + dec.cells}, ""


def search(loop, x0: np.ndarray, r_eq: float, Bd: np.ndarray, Cy: np.ndarray, energy: float,
           *, max_cells: int = MAX_CELLS) -> tuple[dict | None, dict]:
    """The smallest γ of :data:`FACTORS` · γ_lin proved (module docstring), and a log."""
    A = loop.jacobian(x0)
    log: dict = {"attempts": []}
    try:
        g_lin, _ = hinf_certificate(A, Bd, Cy)
    except (ValueError, CertificateError) as e:
        log["reason"] = f"the linearised loop has no finite ℓ2 gain ({e})"
        return None, log
    log["linear_gain"] = g_lin
    n, q = Bd.shape
    CC = Cy.T @ Cy
    # AᵀMA − P + C_yᵀC_y = −μ(C_yᵀC_y + s I): a margin for the core test near x̄
    Q = (1 + MARGIN) * CC + MARGIN * max(float(np.trace(CC)) / n, 1e-12) * np.eye(n)
    for f in FACTORS:
        gamma = f * g_lin
        try:
            P = sla.solve_discrete_are(A, Bd, Q, -(gamma**2) * np.eye(q))
            P = (P + P.T) / 2
            res, why = _attempt(loop, x0, P, gamma, Bd, Cy, r_eq, energy, max_cells)
        except (np.linalg.LinAlgError, ValueError, CertificateError) as e:
            res, why = None, str(e)
        log["attempts"].append({"gamma": gamma, "reason": why})
        if res is not None:
            return {"gamma": gamma, "P": P, **res}, log
    log["reason"] = "; ".join(f"{a['gamma']:.4g}: {a['reason']}" for a in log["attempts"])
    return None, log


def recheck(loop, x0: np.ndarray, r_eq: float, data: dict, max_cells: int) -> float:
    """Re-prove stored gain data; returns γ.

    Raises
    ------
    CertificateError
        A test fails on some cell, or the stored radii do not cover {V ≤ γ² e}.
    """
    P = np.asarray(data["P"], dtype=np.float64)
    gamma, energy = float(data["gamma"]), float(data["energy"])
    Bd, Cy = (np.asarray(data[k], dtype=np.float64) for k in ("Bd", "Cy"))
    problem, factor = _problem(x0, P, gamma, Bd.reshape(len(x0), -1),
                               Cy.reshape(-1, len(x0)), r_eq)
    delta = max(problem.deltas())
    R, r0, r_in = (float(data[k]) for k in ("radius", "core_radius", "r_in"))
    if not (R >= gamma * math.sqrt(energy) + 2 * delta and 0 < 4 * delta < r0
            and r_in <= r0 - 2 * delta):
        raise CertificateError("the stored radii do not cover {V ≤ γ² e}; the certificate was "
                               "tampered with")
    prove(loop, problem, "core", r_in=0.0, r_out=min(r0, R), bound=1.0 / factor,
          max_cells=max_cells)
    if R > r0:
        prove(loop, problem, "decrease", r_in=r_in, r_out=R, max_cells=max_cells)
    return gamma
