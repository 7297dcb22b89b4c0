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

so evaluating ρ* costs one block Cholesky sweep, O(Σ n_k³), never a generic SDP.

:func:`optimize_multipliers` solves min ρ s.t. M(ρ, t) ⪯ 0 by a log-barrier path-following Newton
method whose Newton system exploits that every neuron's term E_i = V_i K_i V_iᵀ has rank two
(V_i = [a_i, e_i]): the (N+1)×(N+1) Hessian is elementwise arithmetic on three N×N matrices
(no generic solver, no Kronecker products). It starts from the closed-form feasible point of
:func:`feasible_start` (layer-uniform multipliers chosen back to front), on weights rescaled by
powers of two. Whatever t it returns, the certificate's value is recomputed from t alone by
:func:`~certnet.verify.lmi.certify_rho` in float64; the iteration's ρ is never reported.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg as sla

from certnet.verify.lmi import SlopeNet, assemble

__all__ = ["feasible_start", "rho_and_grad", "optimize_multipliers"]


def _chol(x):
    return sla.cho_factor(x, lower=True, check_finite=False)


def rho_and_grad(net: SlopeNet, ts: list[np.ndarray], grad: bool = True):
    """ρ*(t) and ∂ρ*/∂t (list per layer), or (inf, None) when some X_k is not definite."""
    ws, ell = net.ws, len(net.ws) - 1
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
            if np.any(np.asarray(a * b) != 0.0):  # per-layer floats or per-neuron arrays
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
    if np.any(np.asarray(a * b) != 0.0):
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
        ab2 = float(np.max(np.asarray(a + b) ** 2))  # per-neuron slopes: the layer's largest
        taus[k] = max(lam, 0.0) / 2.0 + 0.5 * nk * nk * t1 * ab2 / 2 + 1e-3 * t1
        x = 2.0 * taus[k] * np.eye(ws[k].shape[1]) + r
    return [np.full(n, taus[k + 1]) for k, n in enumerate(net.hidden)]


def _neuron_rows(net: SlopeNet):
    """A (N×D: neuron i's weight row at its input block), hidden column index, K entries.

    K_i = [[−2α_iβ_i, α_i+β_i], [α_i+β_i, −2]]: the slopes are per layer (floats) or per
    neuron (arrays of the layer's width, a local certificate); both broadcast here."""
    off = [0]
    for n in net.widths[:-1]:
        off.append(off[-1] + n)
    n_tot, d = sum(net.hidden), off[-1]
    a = np.zeros((n_tot, d))
    k00, k01, k11 = np.empty(n_tot), np.empty(n_tot), np.empty(n_tot)
    r = 0
    for k, n in enumerate(net.hidden):
        a[r : r + n, off[k] : off[k + 1]] = net.ws[k]
        al, be = net.alpha[k], net.beta[k]
        k00[r : r + n], k01[r : r + n], k11[r : r + n] = -2.0 * al * be, al + be, -2.0
        r += n
    return a, np.arange(off[1], d), (k00, k01, k11)


def _a_times(net: SlopeNet, y: np.ndarray) -> np.ndarray:
    """A @ y using A's block structure (neuron rows hold W_k in layer k's input columns)."""
    out, c = [], 0
    for w in net.ws[:-1]:
        out.append(w @ y[c : c + w.shape[1]])
        c += w.shape[1]
    return np.concatenate(out, axis=0)


def _logdet_neg(net: SlopeNet, ts, rho):
    """(−M(ρ,t))'s Cholesky factor and log det, or (None, inf) if not positive definite."""
    m = assemble(net, ts, rho)
    try:
        c = sla.cholesky(-m, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None, np.inf
    return c, 2.0 * float(np.log(np.diag(c)).sum())


def optimize_multipliers(
    net: SlopeNet, *, max_iter: int = 200, time_budget: float | None = None, tol: float = 1e-3
):
    """LipSDP-Neuron by a structured log-barrier Newton method on normalised weights.

    Minimises ρ/μ − log det(−M(ρ, t)) − Σ log t_i for μ ↓ 0 (path following, μ ← μ/2 after
    each centring, reusing Z and H). The Newton system is (N+1)×(N+1), built from Z = (−M)⁻¹ via
    P = A Z Aᵀ, Q = (A Z)[:, hidden], R = Z[hidden, hidden] (each E_i = V_i K_i V_iᵀ has rank 2,
    V_i = [a_i, e_i]), so H_ij = tr(K_i G_ij K_j G_ijᵀ) with G_ij = [[P, Q], [Qᵀ, R]]_ij is
    elementwise array arithmetic. Stops when the barrier's duality-gap bound ν·μ, ν = D + N,
    falls below ``tol``·ρ or at ``max_iter`` Newton steps — so the result does not depend on the
    machine's speed or load — or, only if the caller sets one, at a ``time_budget`` cap in
    seconds (recorded in the returned status). Every iterate is strictly feasible, so its ρ
    bounds its Schur value ρ*(t) (what the certificate proves); the t returned is the one of
    smallest ρ*(t) among the start, the last iterate and the iterate of smallest ρ — not
    simply the last: ρ*(t) along the barrier path is not monotone, and an early stop
    (``max_iter``, ``time_budget``) used to return an iterate up to 2× worse than the start.

    Returns
    -------
    (list of ndarray, dict)
        Multipliers per hidden layer (normalised units) and solver info (``best_rho``: ρ*(t)
        of the returned t).
    """
    t_start = time.perf_counter()
    start = feasible_start(net)
    if not start:
        return [], {"iterations": 0, "time": 0.0, "status": "no hidden layer"}
    cuts = np.cumsum(net.hidden)[:-1]
    a_mat, hid, (k00, k01, k11) = _neuron_rows(net)
    d_all = a_mat.shape[1]
    del a_mat
    kmat = ((k00, k01), (k01, k11))
    pairs = [(i, j) for i in range(2) for j in range(2) if np.any(kmat[i][j])]  # αβ = 0: 3 of 4
    n0 = net.widths[0]
    t = np.concatenate(start)
    rho_start, _ = rho_and_grad(net, start, grad=False)
    rho = 2.0 * rho_start + 1e-12
    nu = d_all + t.size
    mu = rho / nu
    chol, ld = _logdet_neg(net, np.split(t, cuts), rho)
    steps, status = 0, "max_iter reached"
    # M(ρ, t) ≺ 0 at every iterate, so the iterate's ρ ≥ ρ*(t): track the t of smallest ρ
    low_rho, low_t = rho, t.copy()

    def objective(t_, rho_, ld_):
        return rho_ / mu - ld_ - float(np.log(t_).sum())

    while steps < max_iter:
        if time_budget is not None and time.perf_counter() - t_start > time_budget:
            status = f"time budget {time_budget:g} s reached"
            break
        z, info_ = sla.lapack.dpotri(chol, lower=1)
        if info_ != 0:
            status = "inverse failed"
            break
        z = np.tril(z) + np.tril(z, -1).T
        az = _a_times(net, z)
        g_blk = (_a_times(net, az.T).T, az[:, hid], z[np.ix_(hid, hid)])  # P, Q, R
        gmat = ((g_blk[0], g_blk[1]), (g_blk[1].T, g_blk[2]))
        grad_t = k00 * np.diag(g_blk[0]) + 2 * k01 * np.diag(g_blk[1]) + k11 * np.diag(g_blk[2])
        h = np.zeros((t.size + 1, t.size + 1))
        htt = h[:-1, :-1]
        for i1, i2 in pairs:
            for i3, i4 in pairs:
                htt += np.multiply.outer(kmat[i1][i2], kmat[i3][i4]) * (gmat[i2][i3] * gmat[i1][i4])
        u = z[:, :n0]
        au, eu = _a_times(net, u), u[hid]
        h[:-1, -1] = h[-1, :-1] = -(
            k00 * (au * au).sum(1) + 2 * k01 * (au * eu).sum(1) + k11 * (eu * eu).sum(1)
        )
        h[-1, -1] = float((z[:n0, :n0] ** 2).sum())
        htt[np.diag_indices(t.size)] += 1.0 / (t * t)
        sc = 1.0 / np.sqrt(np.maximum(np.diag(h), 1e-300))  # Jacobi scaling: conditioning
        hs = h * sc[:, None] * sc[None, :]
        try:
            fac = sla.cho_factor(hs, lower=True, check_finite=False)

            def newton(rhs, fac=fac, sc=sc):
                return -sc * sla.cho_solve(fac, sc * rhs, check_finite=False)

        except np.linalg.LinAlgError:

            def newton(rhs, hs=hs, sc=sc):
                return -sc * np.linalg.lstsq(hs, sc * rhs, rcond=None)[0]

        g = np.concatenate([grad_t - 1.0 / t, [0.0]])
        steps += 1
        converged = False
        while True:  # once centred at this μ, shrink μ (Z and H do not depend on μ)
            g[-1] = 1.0 / mu - float(np.trace(z[:n0, :n0]))
            dx = newton(g)
            dec2 = float(-g @ dx)
            if dec2 >= 0.5:
                break
            if nu * mu < tol * rho:
                converged = True
                break
            mu /= 2.0
        if converged:
            status = "converged"
            break
        f0, step = objective(t, rho, ld), 1.0
        while step > 1e-10:
            t1, r1 = t + step * dx[:-1], rho + step * dx[-1]
            if (t1 > 0).all():
                c1, ld1 = _logdet_neg(net, np.split(t1, cuts), r1)
                if c1 is not None and objective(t1, r1, ld1) <= f0 - 0.25 * step * dec2:
                    t, rho, chol, ld = t1, r1, c1, ld1
                    if rho < low_rho:
                        low_rho, low_t = rho, t.copy()
                    break
            step *= 0.5
        else:
            status = "line search failed"
            break
    best_rho, best_t = rho_start, np.concatenate(start)
    for cand in (low_t, t):  # the proved value ρ*(t) is what counts: return the best of these
        r_star, _ = rho_and_grad(net, np.split(cand, cuts), grad=False)
        if r_star < best_rho:
            best_rho, best_t = r_star, cand
    info = {
        "iterations": steps,
        "time": time.perf_counter() - t_start,
        "status": status,
        "start_rho": rho_start,
        "rho": rho,
        "best_rho": best_rho,
    }
    return np.split(best_t, cuts), info
