"""LipSDP-Neuron tightness without an SDP solver: optimise the multipliers through ρ*(t).

For fixed multipliers t ≥ 0 with C(t) ≺ 0, the best bound they prove is (see :mod:`lmi`)

    ρ*(t) = λ_max(S(t)),   S(t) = P(t) + Q(t) X_1(t)⁻¹ Q(t)ᵀ,

where X_1 comes from eliminating the block-tridiagonal hidden block from the last layer back:
X_ℓ = 2 diag(t_ℓ) − W_ℓᵀW_ℓ, X_k = 2 diag(t_k) + 2 W_kᵀ diag(α_{k+1}β_{k+1} t_{k+1}) W_k
− B_k X_{k+1}⁻¹ B_kᵀ with B_k = (α_{k+1}+β_{k+1}) W_kᵀ diag(t_{k+1}); every X_k must be
positive definite. min_t ρ*(t) *is* LipSDP-Neuron (the feasible set of (ρ, t) is convex, so
ρ* is convex in t). With u the top eigenvector of S and v = [u; y], y_1 = X_1⁻¹ Qᵀu,
y_{k+1} = X_{k+1}⁻¹ B_kᵀ y_k, the gradient is, per neuron i with z_i = (W_{k−1} v_{k−1})_i and
w_i = (y_k)_i,

    ∂ρ*/∂t_i = 2 (w_i − α z_i)(β z_i − w_i),

so one evaluation costs one block Cholesky sweep, O(Σ n_k³), never a generic SDP. We minimise
log ρ* over log t with L-BFGS, from a closed-form feasible point (layer-uniform multipliers
chosen back to front so that each X_k ⪰ its share), on weights rescaled by powers of two.
Whatever t the optimiser returns, the certificate's value is recomputed from t alone by
:func:`~certnet.verify.lmi.certify_rho` in float64; the optimiser's ρ is never reported.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg as sla
from scipy.optimize import minimize

from certnet.verify.lmi import SlopeNet

__all__ = ["feasible_start", "rho_and_grad", "optimize_multipliers"]


def _chol(x):
    return sla.cho_factor(x, lower=True, check_finite=False)


def rho_and_grad(net: SlopeNet, ts: list[np.ndarray], grad: bool = True):
    """ρ*(t) and ∂ρ*/∂t (list per layer), or (inf, None) when some X_k is not definite."""
    ws, ell = net.ws, len(net.ws) - 1
    n0 = net.widths[0]
    if ell == 0:
        w = ws[0]
        ev, vec = np.linalg.eigh(w.T @ w)
        return float(ev[-1]), []
    xf = [None] * (ell + 1)
    bs = [None] * (ell + 1)
    try:
        x = 2.0 * np.diag(ts[ell - 1]) - ws[ell].T @ ws[ell]
        xf[ell] = _chol(x)
        for k in range(ell - 1, 0, -1):
            a, b = net.alpha[k], net.beta[k]
            t1 = ts[k]
            x = 2.0 * np.diag(ts[k - 1])
            if a * b != 0.0:
                x += 2.0 * ws[k].T @ ((a * b * t1)[:, None] * ws[k])
            bk = ws[k].T * ((a + b) * t1)[None, :]
            bs[k] = bk
            x -= bk @ sla.cho_solve(xf[k + 1], bk.T, check_finite=False)
            xf[k] = _chol(x)
    except np.linalg.LinAlgError:
        return np.inf, None
    a, b = net.alpha[0], net.beta[0]
    q = ws[0].T * ((a + b) * ts[0])[None, :]
    s = q @ sla.cho_solve(xf[1], q.T, check_finite=False)
    if a * b != 0.0:
        s -= 2.0 * ws[0].T @ ((a * b * ts[0])[:, None] * ws[0])
    ev, vec = np.linalg.eigh((s + s.T) / 2)
    rho = float(ev[-1])
    if not grad:
        return rho, None
    u = vec[:, -1]
    v = [u, sla.cho_solve(xf[1], q.T @ u, check_finite=False)]
    for k in range(1, ell):
        v.append(sla.cho_solve(xf[k + 1], bs[k].T @ v[k], check_finite=False))
    g = []
    for k in range(1, ell + 1):
        a, b = net.alpha[k - 1], net.beta[k - 1]
        z = ws[k - 1] @ v[k - 1]
        w = v[k]
        g.append(2.0 * (w - a * z) * (b * z - w))
    del n0
    return rho, g


def feasible_start(net: SlopeNet) -> list[np.ndarray]:
    """Layer-uniform multipliers t_k = τ_k 1 making every X_k ⪰ (its own part) ≻ 0.

    τ_ℓ = ‖W_ℓ‖₂² (so X_ℓ ⪰ τ_ℓ I); going back, τ_k = max(λ_max(−R_k), 0) + c_k, where
    X_k = 2τ_k I + R_k and c_k = ‖W_k‖₂² τ_{k+1}·(α_{k+1}+β_{k+1})²/2 + 1e-3 keeps a margin of the
    same scale. The analogue of the product-of-norms proof, valid for any [α, β].
    """
    ws, ell = net.ws, len(net.ws) - 1
    if ell == 0:
        return []
    taus = [0.0] * (ell + 1)
    wl = np.linalg.norm(ws[ell], 2)
    taus[ell] = max(wl * wl, 1e-6)
    x = 2.0 * taus[ell] * np.eye(ws[ell].shape[1]) - ws[ell].T @ ws[ell]
    for k in range(ell - 1, 0, -1):
        a, b = net.alpha[k], net.beta[k]
        t1 = taus[k + 1]
        r = 2.0 * a * b * t1 * ws[k].T @ ws[k]
        bk = (a + b) * t1 * ws[k].T
        r -= bk @ np.linalg.solve(x, bk.T)
        lam = float(np.linalg.eigvalsh(-(r + r.T) / 2)[-1])
        nk = np.linalg.norm(ws[k], 2)
        taus[k] = max(lam, 0.0) / 2.0 + 0.5 * nk * nk * t1 * (a + b) ** 2 / 2 + 1e-3 * t1
        x = 2.0 * taus[k] * np.eye(ws[k].shape[1]) + r
    return [np.full(n, taus[k + 1]) for k, n in enumerate(net.hidden)]


def optimize_multipliers(
    net: SlopeNet, *, max_iter: int = 2000, time_budget: float = 60.0, tol: float = 1e-7
):
    """Minimise ρ*(t) over t > 0 (normalised weights); returns (t list, info dict)."""
    t0 = time.perf_counter()
    start = feasible_start(net)
    if not start:
        return [], {"iterations": 0, "time": 0.0, "status": "no hidden layer"}
    sizes = net.hidden
    cuts = np.cumsum(sizes)[:-1]
    rho0, _ = rho_and_grad(net, start, grad=False)
    best = {"rho": rho0, "s": np.log(np.concatenate(start))}
    evals = [0]

    class _Budget(Exception):
        pass

    def fun(s):
        evals[0] += 1
        ts = np.split(np.exp(s), cuts)
        rho, g = rho_and_grad(net, ts)
        if not np.isfinite(rho) or rho <= 0:
            return 1e3 + float(np.log(max(best["rho"], 1e-300))), np.zeros_like(s)
        if rho < best["rho"]:
            best["rho"], best["s"] = rho, s.copy()
        if time.perf_counter() - t0 > time_budget:
            raise _Budget
        return float(np.log(rho)), np.concatenate(g) * np.exp(s) / rho

    status = "converged"
    try:
        res = minimize(
            fun,
            best["s"].copy(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "maxcor": 30, "ftol": tol, "gtol": 1e-10},
        )
        status = "converged" if res.success else f"stopped: {res.message}"
    except _Budget:
        status = f"time budget {time_budget:g} s reached"
    ts = np.split(np.exp(best["s"]), cuts)
    info = {
        "iterations": evals[0],
        "time": time.perf_counter() - t0,
        "status": status,
        "start_rho": rho0,
        "rho": best["rho"],
    }
    return ts, info
