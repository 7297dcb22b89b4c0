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

:func:`optimize_multipliers` solves min ρ s.t. M(ρ, t) ⪯ 0 by a primal–dual interior-point
method (HKM direction, Mehrotra predictor–corrector) whose Schur system exploits that every
neuron's term E_i = V_i K_i V_iᵀ has rank two (V_i = [a_i, e_i]): the (N+1)×(N+1) matrix is
elementwise arithmetic on the 2×2 blocks of the primal and dual matrices (no generic solver,
no Kronecker products). It starts from the closed-form feasible point of :func:`feasible_start`
(layer-uniform multipliers chosen back to front), on weights rescaled by powers of two, and
needs 7–25 iterations on the nets measured (it was 40–90+ for the earlier log-barrier method).
Whatever t it returns, the certificate's value is recomputed from t alone by
:func:`~certnet.verify.lmi.certify_rho` in float64; the iteration's ρ is never reported.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg as sla
import scipy.sparse.linalg as spla

from certnet.errors import ProblemTooLargeError
from certnet.verify.lmi import SlopeNet, assemble

__all__ = ["feasible_start", "rho_and_grad", "optimize_multipliers", "memory_estimate"]


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


def _schur_rho(net: SlopeNet, ts) -> float:
    """ρ*(t) = λ_max(S(t)) by the O(Σ n_k³) block recursion of the module docstring, or inf if
    some X_k is not positive definite (then t proves nothing)."""
    ws, ell = net.ws, len(net.ws) - 1
    xf = [None] * (ell + 1)
    try:
        x = 2.0 * np.diag(ts[ell - 1]) - ws[ell].T @ ws[ell]
        xf[ell] = _chol(x)
        for k in range(ell - 1, 0, -1):
            a, b = net.alpha[k], net.beta[k]
            t1 = ts[k]
            x = 2.0 * np.diag(ts[k - 1])
            if np.any(np.asarray(a * b) != 0.0):
                x += 2.0 * ws[k].T @ ((a * b * t1)[:, None] * ws[k])
            bk = ws[k].T * ((a + b) * t1)[None, :]
            x -= bk @ sla.cho_solve(xf[k + 1], bk.T, check_finite=False)
            xf[k] = _chol(x)
    except np.linalg.LinAlgError:
        return np.inf
    a, b = net.alpha[0], net.beta[0]
    q = ws[0].T * ((a + b) * ts[0])[None, :]
    s = q @ sla.cho_solve(xf[1], q.T, check_finite=False)
    if np.any(np.asarray(a * b) != 0.0):
        s -= 2.0 * ws[0].T @ ((a * b * ts[0])[:, None] * ws[0])
    return float(np.linalg.eigvalsh((s + s.T) / 2)[-1])


def _snap(t: np.ndarray, bits: int = 32) -> np.ndarray:
    """t rounded to ``bits`` significant bits: last-bit differences of the solver's arithmetic
    (e.g. another BLAS thread count) then almost never change the multipliers certified."""
    m, e = np.frexp(t)
    return np.ldexp(np.round(m * 2.0**bits) / 2.0**bits, e)


def memory_estimate(net: SlopeNet) -> float:
    """Bytes :func:`optimize_multipliers` needs: ≈ 28 float64 arrays of D × D, D = n_0 + N
    (S, S⁻¹, X, both Cholesky factors, the Schur matrix, the 2×2 blocks and the steps).
    Measured peak RSS incl. the interpreter: 0.76 GB for 4-512-512-512-1 (D = 1540, estimate
    0.53 GB + ≈ 0.25 GB interpreter and libraries), 3.0 GB for 4-1024×4-1 (D = 4100,
    estimate 3.8 GB)."""
    d = sum(net.widths[:-1])
    return 28.0 * 8.0 * d * d


def _e_traces(net: SlopeNet, y: np.ndarray, ks) -> np.ndarray:
    """[tr(E_i Y)]_i for symmetric Y, from Y's block-tridiagonal part only (E_i = V_i K_i V_iᵀ:
    k00 (W Y_bb Wᵀ)_ii + 2 k01 (W Y_b,b+1)_ii + k11 (Y_b+1,b+1)_ii, b the neuron's input block)."""
    off = [0]
    for n in net.widths[:-1]:
        off.append(off[-1] + n)
    out = []
    for k, w in enumerate(net.ws[:-1]):
        b, c = slice(off[k], off[k + 1]), slice(off[k + 1], off[k + 2])
        out.append(
            (
                (w @ y[b, b] * w).sum(1),
                (w * y[b, c].T).sum(1) + (w * y[c, b]).sum(1),
                np.diag(y[c, c]).copy(),
            )
        )
    k00, k01, k11 = ks
    p, q, r = (np.concatenate([o[j] for o in out]) for j in range(3))
    return k00 * p + k01 * q + k11 * r


def _g_blocks(net: SlopeNet, y: np.ndarray, hid):
    """(P, Q, R) = (A Y Aᵀ, (A Y)[:, hidden], Y[hidden, hidden]): the 2×2 blocks VᵢᵀYVⱼ."""
    ay = _a_times(net, y)
    return _a_times(net, ay.T).T, ay[:, hid], y[np.ix_(hid, hid)]


def _boundary(lfac: np.ndarray, dm: np.ndarray, cap: float) -> float:
    """≈ the largest α ≤ ``cap`` with F + α ΔF ⪰ 0, F = L Lᵀ: 1/(−λ_min(L⁻¹ ΔF L⁻ᵀ)) by Lanczos
    (ARPACK from a fixed start vector, so deterministic; a Ritz value lies above λ_min, so the
    estimate may be slightly too long: the caller takes 0.95 of it and checks by Cholesky)."""
    d = dm.shape[0]
    if d <= 150:  # small: the exact value from a dense eigensolver is cheaper than ARPACK
        b = sla.solve_triangular(lfac, dm, lower=True, check_finite=False)
        b = sla.solve_triangular(lfac, b.T, lower=True, check_finite=False)
        lam = float(np.linalg.eigvalsh((b + b.T) / 2)[0])
        return cap if lam >= -1.0 / cap else -1.0 / lam

    def mv(v):
        w = sla.solve_triangular(lfac, v, lower=True, trans="T", check_finite=False)
        return sla.solve_triangular(lfac, dm @ w, lower=True, check_finite=False)

    op = spla.LinearOperator((d, d), matvec=mv, dtype=np.float64)
    try:
        lam = spla.eigsh(op, k=1, which="SA", v0=np.ones(d), tol=1e-3, return_eigenvectors=False)
        lam = float(lam[0])
    except spla.ArpackNoConvergence as exc:
        lam = float(exc.eigenvalues[0]) if len(exc.eigenvalues) else -1.0 / cap
    return cap if lam >= -1.0 / cap else -1.0 / lam


def _ratio(x: np.ndarray, dx: np.ndarray, cap: float) -> float:
    neg = dx < 0
    return min(cap, float((-x[neg] / dx[neg]).min())) if neg.any() else cap


def optimize_multipliers(
    net: SlopeNet,
    *,
    max_iter: int = 60,
    time_budget: float | None = None,
    tol: float = 1e-4,
    max_memory: float = 4e9,
):
    """LipSDP-Neuron by a primal–dual (HKM) predictor–corrector interior-point method.

    Problem (y = (t, ρ), S(y) = −M(ρ, t), ν = D + N)::

        min ρ  s.t.  S(y) = ρJ − Σ_i t_i E_i − C ⪰ 0,  t ≥ 0;
        dual: max ⟨C, X⟩  s.t.  tr X_00 = 1,  z_i = tr(E_i X) ≥ 0,  X ⪰ 0,

    with J the input block's identity and C = W_ℓᵀW_ℓ in the last block. S is always formed
    from y (y-feasible); X, z start from the centred point X = γS⁻¹, z = γ/t and become
    feasible along the way. Each iteration solves the (N+1)×(N+1) Schur system
    (𝓗 + diag(z/t)) Δy = r twice (Mehrotra: an affine predictor gives σ = (μ_aff/μ)³, the
    corrector adds the second-order term ΔX_a ΔS_a Z), with 𝓗_ij = tr(A_i X A_j Z), Z = S⁻¹.
    Every E_i = V_i K_i V_iᵀ has rank two (V_i = [a_i, e_i]), so 𝓗 is elementwise arithmetic
    on the 2×2 blocks VᵢᵀXVⱼ and VᵢᵀZVⱼ (:func:`_g_blocks`): no Kronecker products. Steps
    are 0.95 of the largest feasible one (:func:`_boundary`), accepted only when S and X
    factor by Cholesky (else shortened by 0.7).

    It stops when ρ*(t) − ⟨C, X⟩ ≤ ``tol``·ρ*(t) with X dual feasible to ``tol``
    ("converged"), at ``max_iter`` iterations, or — only if the caller sets one — at
    ``time_budget`` seconds; no other branch depends on timing, so equal inputs give equal
    multipliers. The t returned is the iterate of smallest Schur value ρ*(t) (each is
    checked by :func:`_schur_rho`), rounded to 32 significant bits (:func:`_snap`); the
    certificate's value is recomputed from it by :func:`~certnet.verify.lmi.certify_rho`,
    never taken from here.

    Memory is ≈ :func:`memory_estimate` (about 28 dense D×D float64 arrays, D = n_0 + N);
    a net above ``max_memory`` bytes is refused before any work.

    Returns
    -------
    (list of ndarray, dict)
        Multipliers per hidden layer (normalised units) and solver info: ``iterations``,
        ``status``, ``best_rho`` (ρ*(t) of the returned t), ``dual`` (⟨C, X⟩ of the last
        dual iterate: a lower bound on LipSDP-Neuron's ρ when X is feasible, in floating
        point), ``gap`` (relative), ``dual_infeas`` and ``time``.

    Raises
    ------
    ProblemTooLargeError
        The estimated memory exceeds ``max_memory``.
    """
    t_start = time.perf_counter()
    need = memory_estimate(net)
    if need > max_memory:
        d = sum(net.widths[:-1])
        raise ProblemTooLargeError(
            f"the 'fast' LipSDP-Neuron solver needs about {need / 1e9:.1f} GB for this net "
            f"(LMI side D = {d}: it keeps about 28 dense D×D float64 matrices and its time grows "
            f"as D³ per iteration), above max_memory = {max_memory / 1e9:.1f} GB; pass a larger "
            "max_memory if the machine has it (expect minutes), or use method='product' for an "
            "instant, looser bound"
        )
    start = feasible_start(net)
    if not start:
        return [], {"iterations": 0, "time": 0.0, "status": "no hidden layer"}
    cuts = np.cumsum(net.hidden)[:-1]
    a_mat, hid, ks = _neuron_rows(net)
    k00, k01, k11 = ks
    d_all = a_mat.shape[1]
    del a_mat
    kmat = ((k00, k01), (k01, k11))
    pairs = [(i, j) for i in range(2) for j in range(2) if np.any(kmat[i][j])]  # αβ = 0: 3 of 4
    n0, n_t = net.widths[0], sum(net.hidden)
    nu = d_all + n_t
    c_mat = assemble(net, [np.zeros(n) for n in net.hidden], 0.0)  # C: the constant part

    def s_of(t_, rho_):
        return -assemble(net, np.split(t_, cuts), rho_)

    def d_s(dy):
        return c_mat - assemble(net, np.split(dy[:-1], cuts), dy[-1])

    def a_star(y):  # 𝒜*(Y) on (t, ρ): (−tr(E_i Y), tr Y_00)
        return np.concatenate([-_e_traces(net, y, ks), [np.trace(y[:n0, :n0])]])

    def chol(x):
        try:
            return sla.cholesky(x, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None

    t = np.concatenate(start)
    rho_start = _schur_rho(net, start)
    rho = 2.0 * rho_start + 1e-12
    best_rho, best_t = rho_start, t.copy()
    s_mat = s_of(t, rho)
    ls = chol(s_mat)
    if ls is None:  # the closed-form start is definite in exact arithmetic only
        info = {"iterations": 0, "time": time.perf_counter() - t_start, "best_rho": rho_start}
        return start, {**info, "status": "start not definite in float64", "start_rho": rho_start}
    z_mat = _inv_chol(ls)
    gam = 1.0 / float(np.trace(z_mat[:n0, :n0]))
    x_mat, z = gam * z_mat, gam / t
    lx = chol(x_mat)
    b = np.zeros(n_t + 1)
    b[-1] = 1.0
    steps, status, dual, infeas, gap = 0, "max_iter reached", -np.inf, np.inf, np.inf
    while True:
        dual = float((c_mat * x_mat).sum())
        res = b - a_star(x_mat) - np.concatenate([z, [0.0]])
        infeas = float(np.abs(res).max()) / (1.0 + float(np.abs(z).max()))
        gap = (best_rho - dual) / max(best_rho, 1e-300)
        if abs(gap) <= tol and infeas <= tol:
            status = "converged"
            break
        if steps >= max_iter:
            break
        if lx is None:  # only the start can be: every accepted X factored
            status = "dual start not definite in float64"
            break
        if time_budget is not None and time.perf_counter() - t_start > time_budget:
            status = f"time budget {time_budget:g} s reached"
            break
        steps += 1
        mu = (float((x_mat * s_mat).sum()) + float(z @ t)) / nu
        gz, gx = _g_blocks(net, z_mat, hid), _g_blocks(net, x_mat, hid)
        gzm, gxm = ((gz[0], gz[1]), (gz[1].T, gz[2])), ((gx[0], gx[1]), (gx[1].T, gx[2]))
        h = np.zeros((n_t + 1, n_t + 1))
        htt = h[:-1, :-1]
        for a, bb in pairs:
            for c, d in pairs:
                htt += np.multiply.outer(kmat[a][bb], kmat[c][d]) * (gxm[bb][c] * gzm[a][d])
        del gz, gx, gzm, gxm
        htt += htt.T.copy()
        htt *= 0.5
        uz, ux = z_mat[:, :n0], x_mat[:, :n0]
        auz, aux, euz, eux = _a_times(net, uz), _a_times(net, ux), uz[hid], ux[hid]
        h[:-1, -1] = h[-1, :-1] = -(
            k00 * (aux * auz).sum(1)
            + k01 * ((aux * euz).sum(1) + (eux * auz).sum(1))
            + k11 * (eux * euz).sum(1)
        )
        h[-1, -1] = float((x_mat[:n0, :n0] * z_mat[:n0, :n0]).sum())
        htt[np.diag_indices(n_t)] += z / t
        sc = 1.0 / np.sqrt(np.maximum(np.diag(h), 1e-300))  # Jacobi scaling: conditioning
        h *= sc[:, None]
        h *= sc[None, :]
        try:
            fac = sla.cho_factor(h, lower=True, check_finite=False, overwrite_a=True)
        except np.linalg.LinAlgError:
            status = "Schur system singular"
            break
        del h

        def solve(rhs, fac=fac, sc=sc):
            return sc * sla.cho_solve(fac, sc * rhs, check_finite=False)

        az = a_star(z_mat)

        # predictor (affine, σ = 0)
        dy_a = solve(-b)
        ds_a = d_s(dy_a)
        dsz_a = ds_a @ z_mat
        dx_a = x_mat @ dsz_a
        dx_a = -x_mat - (dx_a + dx_a.T) / 2
        dz_a = -z - z * dy_a[:-1] / t
        ap = _boundary(ls, ds_a, _ratio(t, dy_a[:-1], 2.0))
        ad = _boundary(lx, dx_a, _ratio(z, dz_a, 2.0))
        mu_a = (
            float(((x_mat + ad * dx_a) * (s_mat + ap * ds_a)).sum())
            + float((z + ad * dz_a) @ (t + ap * dy_a[:-1]))
        ) / nu
        sigma = min(1.0, max(mu_a / mu, 0.0) ** 3)
        # corrector, with the second-order term ΔX_a ΔS_a Z
        y2 = dx_a @ dsz_a
        del dsz_a
        lp2 = dz_a * dy_a[:-1] / t
        rhs = sigma * mu * (az + np.concatenate([1.0 / t, [0.0]])) - b - a_star((y2 + y2.T) / 2)
        rhs[:-1] -= lp2
        dy = solve(rhs)
        dsm = d_s(dy)
        dx = x_mat @ (dsm @ z_mat) + y2
        dx = sigma * mu * z_mat - x_mat - (dx + dx.T) / 2
        del y2
        dz = (sigma * mu - z * t) / t - z * dy[:-1] / t - lp2
        ap = _boundary(ls, dsm, _ratio(t, dy[:-1], 2.0))
        ad = _boundary(lx, dx, _ratio(z, dz, 2.0))
        ap, ad = min(1.0, 0.95 * ap), min(1.0, 0.95 * ad)
        # accept only steps whose factorisations succeed (the Lanczos length may be too long)
        for _ in range(30):
            t1, rho1 = t + ap * dy[:-1], rho + ap * dy[-1]
            s1 = s_of(t1, rho1)
            ls1 = chol(s1) if (t1 > 0).all() else None
            if ls1 is not None:
                break
            ap *= 0.7
        else:
            status = "no primal step possible"
            break
        for _ in range(30):
            x1, z1 = x_mat + ad * dx, z + ad * dz
            lx1 = chol(x1) if (z1 > 0).all() else None
            if lx1 is not None:
                break
            ad *= 0.7
        else:
            status = "no dual step possible"
            break
        t, rho, s_mat, ls, x_mat, z, lx = t1, rho1, s1, ls1, x1, z1, lx1
        del dx, dsm, s1, x1
        r_star = _schur_rho(net, np.split(t, cuts))
        if r_star < best_rho:
            best_rho, best_t = r_star, t.copy()
        try:
            z_mat = _inv_chol(ls)
        except np.linalg.LinAlgError:
            status = "inverse failed"
            break
    snapped = _snap(best_t)
    r_snap = _schur_rho(net, np.split(snapped, cuts))
    if np.isfinite(r_snap):
        best_t, best_rho = snapped, r_snap
    info = {
        "iterations": steps,
        "time": time.perf_counter() - t_start,
        "status": status,
        "start_rho": rho_start,
        "best_rho": best_rho,
        "dual": dual,
        "gap": gap,
        "dual_infeas": infeas,
    }
    return np.split(best_t, cuts), info


def _inv_chol(c: np.ndarray) -> np.ndarray:
    """S⁻¹ from S's lower Cholesky factor (LAPACK dpotri)."""
    z, info = sla.lapack.dpotri(c, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("inverse failed")
    return np.tril(z) + np.tril(z, -1).T
