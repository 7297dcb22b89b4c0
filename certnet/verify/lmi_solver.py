"""A structured interior-point solver for the loop's S-procedure LMIs (no SDP library).

The contraction and dissipation inequalities of :mod:`certnet.verify.loop_sdp` have one shape:

    F(P, λ, h) = X₊ᵀ P X₊ − c E_xᵀ P E_x + Σ_i λ_i (q_i q_iᵀ − e_i e_iᵀ) + F₀ + h E_yᵀE_y ≺ −m I,
    P ≻ m I,   P ≻ a_j e_j e_jᵀ (j with a_j > 0: the level set lies in the box),   λ, h ≥ 0,

with a linear objective (min tr(W P) − w_h h). The variables that are many — one λ_i per
uncertain element, C ≈ 100 for a 2×50 network — enter F by *rank two* (q_i q_iᵀ − e_i e_iᵀ),
P by rank ≤ 4 per entry through Y = [X₊; E_x], h by the rows of E_y. So with Z = (−F − mI)⁻¹
and U = [Yᵀ, Qᵀ, E_νᵀ, E_yᵀ] (nz × (2n + 2C + p)), every gradient entry tr(Z ∂F) and Hessian
entry tr(Z ∂F_k Z ∂F_l) of the log-barrier is read off the small matrix M = UᵀZU: e.g.
H_{λ_i λ_j} = (M_qq)_ij² − (M_qe)_ij² − (M_qe)_ji² + (M_ee)_ij². One Newton step costs
O(nz³ + nz² (2n + 2C + p) + (2C)² nz) instead of the O(#variables · nz³) of a general SDP
solver (CVXOPT: ~2.5 s for the vehicle's 105 × 105 dissipation LMI; this: 0.6–0.8 s, ~250
Newton steps, same γ to 1e-7).

Method: a barrier method (Boyd & Vandenberghe, *Convex Optimization*, §11.3): phase I
minimises a slack s with F − sI ≺ −mI from P₀ = diag(2a + 2m), λ₀ = 1, h₀ = 10⁻³ until
s < −m (or reports infeasible when the gap bound shows the minimal s ≥ 0); phase II follows
the central path of t · objective − Σ log det(blocks) − Σ log λ − log h − log(R − wᵀy) (the
last keeps tr P and Σλ below 10⁶ times their phase-I values: along directions the objective
ignores the barrier has no minimiser otherwise). Each centring is Newton with Jacobi-scaled
Cholesky solves and Armijo backtracking on t·cᵀΔz + Δbarrier (the objective's change is
formed from the step, so rounding of a large t·objective does not stall the search), after a
predictor step along the central path's tangent; t ← 3t. It stops when the duality-gap bound
ν/t falls below ``tol`` · (1 + |objective|) (ν the barrier parameter) or after ``max_iter``
Newton steps — iteration counts, never wall time. Every
iterate is strictly feasible (checked by Cholesky), so the answer needs no repair; callers
still re-prove it in float64 (:func:`certnet.verify.loop_sdp.verify_gain` and friends): the
solver is never trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LoopLMI", "solve"]

MU = 3.0  #: t ← μ t between centrings (μ = 3 took the fewest Newton steps on the vehicle LMIs)


@dataclass
class LoopLMI:
    """The data of one LMI (see the module docstring); arrays in float64.

    ``a``: per-state box weights (0 = no box constraint); ``W``: objective weight of P;
    ``w_h``: objective weight of h (maximised; 0 = no h variable); ``Ey``: (p, nz) or None.
    """

    Xp: np.ndarray
    Ex: np.ndarray
    Q: np.ndarray
    Enu: np.ndarray
    F0: np.ndarray
    c: float
    a: np.ndarray
    W: np.ndarray
    w_h: float = 0.0
    Ey: np.ndarray | None = None
    margin: float = 1e-6


def _basis(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i, n)]


def _sym(n: int, p: np.ndarray) -> np.ndarray:
    """P = Σ p_k E_k with E_k = e_i e_jᵀ + e_j e_iᵀ (i < j) or e_i e_iᵀ."""
    P = np.zeros((n, n))
    for k, (i, j) in enumerate(_basis(n)):
        P[i, j] += p[k]
        if i != j:
            P[j, i] += p[k]
    return P


def _ptrace(n: int, A: np.ndarray) -> np.ndarray:
    """tr(E_k A) for every basis matrix (A symmetric)."""
    return np.array([A[i, i] if i == j else 2.0 * A[i, j] for i, j in _basis(n)])


def _basis_tensor(n: int) -> np.ndarray:
    """The basis matrices E_k stacked, (n(n+1)/2, n, n)."""
    idx = _basis(n)
    E = np.zeros((len(idx), n, n))
    for k, (i, j) in enumerate(idx):
        E[k, i, j] = E[k, j, i] = 1.0
    return E


def _pquad(n: int, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """X_kl = tr(E_k A E_l B) for every pair of basis matrices."""
    E = _basis_tensor(n)
    return np.einsum("kij,lji->kl", E @ A, E @ B)


class _Barrier:
    def __init__(self, lmi: LoopLMI):
        self.L = lmi
        n, nz = lmi.Ex.shape
        self.n, self.nz, self.C = n, nz, lmi.Q.shape[0]
        self.mp = n * (n + 1) // 2
        self.has_h = lmi.w_h != 0.0 and lmi.Ey is not None
        self.boxes = [j for j in range(n) if lmi.a[j] > 0]
        # U = [Yᵀ, Qᵀ, E_νᵀ, E_yᵀ]
        self.Y = np.vstack([lmi.Xp, lmi.Ex])  # (2n, nz)
        parts = [self.Y.T, lmi.Q.T, lmi.Enu.T]
        if self.has_h:
            parts.append(lmi.Ey.T)
        self.U = np.hstack(parts)
        self.cut = np.cumsum([2 * n, self.C, self.C])
        self.bound = None  # (w, R): wᵀy < R keeps the central path bounded (see solve)

    # y = [p, λ, (h)]
    def unpack(self, y):
        p, lam = y[: self.mp], y[self.mp : self.mp + self.C]
        h = y[self.mp + self.C] if self.has_h else 0.0
        return _sym(self.n, p), lam, h

    def F(self, y) -> np.ndarray:
        L = self.L
        P, lam, h = self.unpack(y)
        F = L.Xp.T @ P @ L.Xp - L.c * (L.Ex.T @ P @ L.Ex) + L.F0
        if self.C:
            F = F + L.Q.T @ (lam[:, None] * L.Q) - L.Enu.T @ (lam[:, None] * L.Enu)
        if self.has_h:
            F = F + h * (L.Ey.T @ L.Ey)
        return (F + F.T) / 2

    def small_blocks(self, P) -> list[np.ndarray]:
        n, L = self.n, self.L
        out = [P - L.margin * np.eye(n)]
        for j in self.boxes:
            B = P.copy()
            B[j, j] -= L.a[j]
            out.append(B)
        return out

    def objective_vec(self) -> np.ndarray:
        g = np.zeros(self.mp + self.C + (1 if self.has_h else 0))
        g[: self.mp] = _ptrace(self.n, self.L.W)
        if self.has_h:
            g[-1] = -self.L.w_h
        return g

    @property
    def nu(self) -> float:
        extra = (1 if self.has_h else 0) + (1 if self.bound is not None else 0)
        return self.nz + self.n * (1 + len(self.boxes)) + self.C + extra

    def value(self, y, s=None) -> float | None:
        """Barrier value (without the objective), None when infeasible."""
        P, lam, h = self.unpack(y)
        if np.any(lam <= 0) or (self.has_h and h <= 0):
            return None
        G = -self.F(y) - self.L.margin * np.eye(self.nz)
        if s is not None:
            G = G + s * np.eye(self.nz)
        total = 0.0
        for B in [G, *self.small_blocks(P)]:
            try:
                ch = np.linalg.cholesky(B)
            except np.linalg.LinAlgError:
                return None
            total -= 2.0 * float(np.log(np.diag(ch)).sum())
        total -= float(np.log(lam).sum())
        if self.has_h:
            total -= math.log(h)
        if self.bound is not None:
            w, R = self.bound
            slack = R - float(w @ y)
            if not slack > 0:
                return None
            total -= math.log(slack)
        return total

    def derivatives(self, y, s=None):
        """Gradient and Hessian of the barrier in y (and s when given, last)."""
        n, C, mp = self.n, self.C, self.mp
        P, lam, h = self.unpack(y)
        G = -self.F(y) - self.L.margin * np.eye(self.nz)
        if s is not None:
            G = G + s * np.eye(self.nz)
        import scipy.linalg as sla

        ch = np.linalg.cholesky(G)  # M = UᵀG⁻¹U = WᵀW with W = L⁻¹U: symmetric PSD, accurate
        Wl = sla.solve_triangular(ch, self.U, lower=True)
        M = Wl.T @ Wl
        ZU = sla.solve_triangular(ch.T, Wl, lower=False)
        Z = None
        c1, c2, c3 = self.cut
        MYY = M[:c1, :c1]
        MYq, MYe = M[:c1, c1:c2], M[:c1, c2:c3]
        Mqq, Mqe, Mee = M[c1:c2, c1:c2], M[c1:c2, c2:c3], M[c2:c3, c2:c3]
        nv = mp + C + (1 if self.has_h else 0) + (1 if s is not None else 0)
        g = np.zeros(nv)
        H = np.zeros((nv, nv))
        c = self.L.c
        # p-block: B_k = blockdiag(E_k, −cE_k); tr(Z ∂F_k) = tr(B_k MYY)
        A11, A12, A22 = MYY[:n, :n], MYY[:n, n:], MYY[n:, n:]
        g[:mp] = _ptrace(n, A11) - c * _ptrace(n, A22)
        # ∂F/∂p_k = Yᵀ blockdiag(E_k, −c E_k) Y: tr(B_k MYY B_l MYY), MYY = [[A11, A12], [A21, A22]]
        x12 = _pquad(n, A12, A12.T)
        H[:mp, :mp] = _pquad(n, A11, A11) - c * (x12 + x12.T) + c * c * _pquad(n, A22, A22)
        # λ-block: tr(Z ∂F_i) = (Mqq)_ii − (Mee)_ii
        sl = slice(mp, mp + C)
        g[sl] = np.diag(Mqq) - np.diag(Mee)
        H[sl, sl] = Mqq**2 - Mqe**2 - Mqe.T**2 + Mee**2
        # p–λ: tr(B_k (m_q m_qᵀ − m_e m_eᵀ)) for the i-th columns of MYq, MYe
        if C:
            cross = np.empty((mp, C))
            for k, (i, j) in enumerate(_basis(n)):

                def bq(m, i=i, j=j):
                    top = m[i] * m[j] * (1.0 if i == j else 2.0)
                    bot = m[n + i] * m[n + j] * (1.0 if i == j else 2.0)
                    return top - c * bot

                cross[k] = bq(MYq) - bq(MYe)
            H[:mp, sl] = cross
            H[sl, :mp] = cross.T
        col = mp + C
        if self.has_h:
            MYy, Mqy, Mey, Myy = M[:c1, c3:], M[c1:c2, c3:], M[c2:c3, c3:], M[c3:, c3:]
            g[col] = np.trace(Myy)
            H[col, col] = float((Myy**2).sum())
            H[sl, col] = H[col, sl] = (Mqy**2).sum(1) - (Mey**2).sum(1)
            hp = np.empty(mp)
            for k, (i, j) in enumerate(_basis(n)):
                f = 1.0 if i == j else 2.0
                hp[k] = f * (MYy[i] @ MYy[j]) - c * f * (MYy[n + i] @ MYy[n + j])
            H[:mp, col] = H[col, :mp] = hp
            col += 1
        if s is not None:  # ∂G/∂s = I, ∂G/∂y = −∂F/∂y: grad −tr Z, H_ss tr Z², H_sy −tr(Z²∂F)
            N = ZU.T @ ZU
            NYY = N[:c1, :c1]
            Linv = sla.solve_triangular(ch, np.eye(self.nz), lower=True)
            Z = Linv.T @ Linv
            g[col] = -np.trace(Z)
            H[col, col] = float((Z * Z).sum())
            hs = np.zeros(nv - 1)
            hs[:mp] = -(_ptrace(n, NYY[:n, :n]) - c * _ptrace(n, NYY[n:, n:]))
            hs[sl] = -(np.diag(N[c1:c2, c1:c2]) - np.diag(N[c2:c3, c2:c3]))
            if self.has_h:
                hs[mp + C] = -np.trace(N[c3:, c3:])
            H[col, :col] = H[:col, col] = hs
        # small blocks: −log det(P − D) → grad −tr(Z_j E_k), H tr(Z_j E_k Z_j E_l)
        for B in self.small_blocks(P):
            Zb = np.linalg.inv(B)
            Zb = (Zb + Zb.T) / 2
            g[:mp] -= _ptrace(n, Zb)
            H[:mp, :mp] += _pquad(n, Zb, Zb)
        g[sl] -= 1.0 / lam
        H[sl, sl] += np.diag(1.0 / lam**2)
        if self.has_h:
            g[mp + C] -= 1.0 / h
            H[mp + C, mp + C] += 1.0 / h**2
        if self.bound is not None:
            w, R = self.bound
            slack = R - float(w @ y)
            ny = len(w)
            g[:ny] += w / slack
            H[:ny, :ny] += np.outer(w, w) / slack**2
        return g, H


def _newton(bar: _Barrier, z, t, *, phase1: bool, max_steps: int, count: list):
    """Centre t·cᵀz + barrier(z) by Newton with backtracking; returns (z, how): z strictly
    feasible; ``how`` is "centred" (Newton decrement below its tolerance), "budget"
    (``max_steps`` used) or "failed" (the Newton system or the line search failed)."""

    def split(z):
        return (z[:-1], z[-1]) if phase1 else (z, None)

    def barrier(z):
        y, s = split(z)
        return bar.value(y, s)

    cgrad = f_grad(bar, phase1)
    cur = barrier(z)
    for _ in range(max_steps):
        y, s = split(z)
        g, H = bar.derivatives(y, s)
        g = g + t * cgrad
        step = _scaled_solve(H, -g)
        if step is None:
            return z, "failed"
        count[0] += 1
        dec = float(-g @ step)  # Newton decrement λ² = gᵀH⁻¹g
        if not dec > 1e-9:  # centred: the gap bound ν/t then holds to first order
            return z, "centred"
        # backtracking (Armijo) on Δφ = t·cᵀΔz + Δbarrier: the objective's change is formed
        # from the step itself, so rounding of t·objective (large once t is) does not enter
        alpha = 1.0
        while alpha > 1e-12:
            new = z + alpha * step
            val = barrier(new)
            if val is not None and t * alpha * float(cgrad @ step) + (val - cur) <= (
                -0.25 * alpha * dec
            ):
                z, cur = new, val
                break
            alpha *= 0.5
        else:
            return z, "failed"
        if phase1 and z[-1] < -bar.L.margin:
            return z, "centred"
    return z, "budget"


def _scaled_solve(H: np.ndarray, r: np.ndarray) -> np.ndarray | None:
    """H⁻¹ r with Jacobi scaling (D H D has a unit diagonal: the multipliers' scales differ by
    orders of magnitude) and a Cholesky factorisation, regularised 1e-13 … 1e-7 if rounding
    leaves D H D numerically indefinite; None if even that fails."""
    d = 1.0 / np.sqrt(np.maximum(np.diag(H), 1e-300))
    S = d[:, None] * H * d[None, :]
    for reg in (1e-13, 1e-10, 1e-7):
        try:
            cf = np.linalg.cholesky(S + reg * np.eye(len(H)))
        except np.linalg.LinAlgError:
            continue
        return d * np.linalg.solve(cf.T, np.linalg.solve(cf, d * r))
    return None


def _predict(bar: _Barrier, z, t, t_new, *, phase1: bool):
    """Follow the central path's tangent from t to t_new: H dz/dt = −c at the centre, so
    z(t_new) ≈ z + (t_new − t) dz/dt (shortened until strictly feasible) — the corrector
    then needs a few Newton steps instead of tens."""
    y, s = (z[:-1], z[-1]) if phase1 else (z, None)
    _, H = bar.derivatives(y, s)
    dz = _scaled_solve(H, -f_grad(bar, phase1))
    if dz is None:
        return z
    beta = t_new - t
    for _ in range(30):
        new = z + beta * dz
        ny, ns = (new[:-1], new[-1]) if phase1 else (new, None)
        if bar.value(ny, ns) is not None:
            return new
        beta *= 0.5
    return z


def f_grad(bar: _Barrier, phase1: bool) -> np.ndarray:
    """Gradient of the (linear) objective: phase I minimises s, phase II the LMI's objective."""
    if phase1:
        out = np.zeros(bar.mp + bar.C + (1 if bar.has_h else 0) + 1)
        out[-1] = 1.0
        return out
    return bar.objective_vec()


def solve(lmi: LoopLMI, *, max_iter: int = 400, tol: float = 1e-7) -> dict:
    """Solve one loop LMI; returns {"status", "P", "lam", "h", "iterations"}.

    ``status`` is "optimal" (gap bound met), "max_iter" (a strictly feasible point, not
    optimal), "infeasible" (phase I converged to a slack s ≥ 0: no F ≺ −mI; no point
    returned) or "stalled" (phase I's Newton method failed; no point: solve it elsewhere).
    """
    bar = _Barrier(lmi)
    n, C = bar.n, bar.C
    count = [0]
    diag = 2.0 * np.maximum(lmi.a, 0.0) + 2.0 * lmi.margin + 1e-3  # inside every box block
    y = np.concatenate(
        [
            np.array([diag[i] if i == j else 0.0 for i, j in _basis(n)]),
            np.ones(C),
            [1e-3] if bar.has_h else [],
        ]
    )
    F = bar.F(y)
    s0 = float(np.linalg.eigvalsh(F)[-1]) + lmi.margin + 1.0
    z = np.concatenate([y, [max(s0, 1.0)]])
    # phase I: min s; t starts where the objective and the barrier weigh alike, grows 8×
    t = bar.nu / max(abs(z[-1]), 1.0)
    while count[0] < max_iter:
        z, how = _newton(bar, z, t, phase1=True, max_steps=50, count=count)
        if z[-1] < -lmi.margin:
            break
        if how == "failed":
            return {"status": "stalled", "iterations": count[0]}
        if how == "centred" and bar.nu / t < 1e-9 * (1.0 + abs(z[-1])):  # min s ≥ 0: no F ≺ −mI
            return {"status": "infeasible", "iterations": count[0]}
        z = _predict(bar, z, t, MU * t, phase1=True)
        t *= MU
    else:
        return {"status": "infeasible", "iterations": count[0]}
    y = z[:-1]
    # P and λ may grow without bound along directions the objective ignores (then the
    # barrier has no minimiser and Newton crawls along the ray): bound tr(P)/tr(P₁) +
    # Σλ/Σλ₁ < 10⁶ from the phase-I point — a constraint the optimum leaves inactive
    P1, lam1, _ = bar.unpack(y)
    w = np.zeros(len(y))
    w[: bar.mp] = [1.0 / max(np.trace(P1), 1e-300) if i == j else 0.0 for i, j in _basis(n)]
    if C:
        w[bar.mp : bar.mp + C] = 1.0 / max(float(lam1.sum()), 1e-300)
    bar.bound = (w, 1e6)
    if bar.value(y) is None:  # s < 0 strictly: the point is feasible for phase II
        return {"status": "infeasible", "iterations": count[0]}
    c_obj = bar.objective_vec()
    t = max(1.0, bar.nu / (1.0 + abs(float(c_obj @ y))))
    status = "max_iter"
    while count[0] < max_iter:
        y, _ = _newton(bar, y, t, phase1=False, max_steps=50, count=count)
        if bar.nu / t <= tol * (1.0 + abs(float(c_obj @ y))):
            status = "optimal"
            break
        y = _predict(bar, y, t, MU * t, phase1=False)
        t *= MU
    P, lam, h = bar.unpack(y)
    return {
        "status": status,
        "P": (P + P.T) / 2,
        "lam": lam.copy(),
        "h": float(h),
        "iterations": count[0],
    }
