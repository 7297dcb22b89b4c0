"""Validated zero-order-hold sampling: enclose the exact flow of ẋ = f(x, u) over one period.

A continuous plant in a sampled loop moves by x⁺ = φ_dt(x, u), the exact solution after dt s
with the input u held. :func:`flow` encloses φ_dt and its Jacobian over boxes of states (and
the controller's input over them) for the exact solution, not for a numerical integrator.

Per substep τ = dt/N, for each cell:

1. an a priori enclosure B of every trajectory over [0, τ] by Picard iteration,
   B ⊇ Y + [0, τ] f(B, U) (then the solution exists and stays in B);
2. the Jacobians of f over B × U as intervals, J_y ∈ A₀ ± R, J_u ∈ B₀ ± R_B (A₀, B₀ the
   midpoints), from one jet evaluation of the plant's own ``vector_field``;
3. the sensitivities M = ∂y(τ)/∂y(0) and N = ∂y(τ)/∂u from the linear comparison system:
   M' = (A₀ + Δ) M, N' = (A₀ + Δ) N + B₀ + Δ_B with |Δ| ≤ R, |Δ_B| ≤ R_B along the
   trajectory, so (variation of constants, Gronwall, ∞-norms)

       M ∈ e^{A₀τ} ± τ e^{‖A₀τ‖} ‖R‖ e^{‖(|A₀|+R)τ‖},
       N ∈ F₁B₀ ± τ e^{‖A₀τ‖} (‖R‖ τ e^{‖(|A₀|+R)τ‖} (‖B₀‖ + ‖R_B‖) + ‖R_B‖),
       F₁ = ∫₀^τ e^{A₀s} ds,

   whose widths are proportional to the *variation* of the Jacobian over the cell, so they
   shrink with the cell; e^{A₀τ} and F₁ come from their Taylor series with the truncation
   and round-off bounded (τ is chosen so that ‖A₀τ‖∞ ≤ 1/4);
4. the cell's Jacobian D ← M D + N ∂u/∂z, and the value at its centre by the same comparison
   system, y(τ) ∈ y₀ + F₁ f(y₀, u) ± τ e^{‖A₀τ‖} ‖R‖ τ e^{‖(|A₀|+R)τ‖} ‖f(y₀, u)‖ (A₀, R
   now over the centre's own enclosure), and over the cell by the mean-value form
   y(τ)(z) ∈ y(τ)(z_c) + D (z − z_c), intersected with B.

A cell whose Picard iteration fails (the flow leaves every box tried: a finite escape or a
stiff system) gets an unbounded enclosure, so it can never be certified.
"""

from __future__ import annotations

import math

import numpy as np

from certnet.verify import interval as iv
from certnet.verify.jet import Jet, as_jet

__all__ = ["flow", "flow_jacobian", "expm_enclosure"]

_TAYLOR = 14  # terms of the exponential series (truncation < 1e-19 at ‖Aτ‖ ≤ 1/4)
_NORM_MAX = 0.25  # ‖A₀τ‖∞ allowed per substep
_MAX_SUBSTEPS = 2000
_PICARD = 40


def _inf_norm(a: np.ndarray) -> np.ndarray:
    return np.abs(a).sum(-1).max(-1)


def expm_enclosure(A: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """e^{Aτ} and F₁ = ∫₀^τ e^{As} ds for a batch of matrices A (B, n, n), and a bound on their
    error: returns (E, F, err) with |e^{Aτ} − E| ≤ err and |F₁ − F| ≤ τ err entrywise (err has
    shape (B,), an ∞-norm bound); err = inf where ‖Aτ‖∞ > 1/2."""
    n = A.shape[-1]
    At = A * tau
    a = _inf_norm(At)
    big = a > 0.5  # outside the series' safe range: no bound (the cell fails)
    At = np.where(big[:, None, None], 0.0, At)
    a = np.where(big, 0.0, a)
    eye = np.broadcast_to(np.eye(n), A.shape)
    term = eye.copy()
    E, F = eye.copy(), eye.copy()
    for j in range(1, _TAYLOR + 1):
        term = term @ At / j
        E = E + term
        F = F + term / (j + 1)
    F = F * tau
    K = _TAYLOR
    trunc = a ** (K + 1) / math.factorial(K + 1) / (1.0 - a / (K + 2))
    rnd = (K + 2) * (n + 2) * 2 * iv.U * np.exp(a) * 2
    return E, F, np.where(big, np.inf, (trunc + rnd) * (1 + 1e-6) + 1e-300)


def _box(j: Jet) -> Jet:
    return Jet(j.lo, j.hi)


def _picard(f, y: Jet, u: Jet, tau: float) -> Jet:
    """A box B with y + [0, τ] f(B, u) ⊆ B (per cell; unbounded where none was found)."""
    t = (np.zeros_like(y.lo), np.full_like(y.lo, tau))
    f0 = as_jet(f(y, u))
    grow = iv.mul(t, (f0.lo, f0.hi))
    span = np.maximum(y.hi - y.lo, 1e-12 * (1.0 + np.abs(y.lo) + np.abs(y.hi)))
    lo = y.lo + np.minimum(grow[0], 0) * 1.5 - 0.1 * span - 1e-300
    hi = y.hi + np.maximum(grow[1], 0) * 1.5 + 0.1 * span + 1e-300
    ok = np.zeros(y.lo.shape[0], dtype=bool)
    for _ in range(_PICARD):
        with np.errstate(all="ignore"):
            fb = as_jet(f(Jet(lo, hi), u))
            step = iv.mul(t, (fb.lo, fb.hi))
            nlo, nhi = iv.add((y.lo, y.hi), step)
        inside = np.all((nlo >= lo) & (nhi <= hi), axis=-1)
        ok |= inside
        if np.all(ok):
            break
        w = np.maximum(nhi - nlo, span)
        lo = np.where(inside[:, None], lo, np.minimum(lo, nlo) - 0.5 * w)
        hi = np.where(inside[:, None], hi, np.maximum(hi, nhi) + 0.5 * w)
    lo = np.where(ok[:, None], lo, -np.inf)
    hi = np.where(ok[:, None], hi, np.inf)
    return Jet(np.nan_to_num(lo, nan=-np.inf), np.nan_to_num(hi, nan=np.inf))


def _jacobians(f, B: Jet, u: Jet, n: int, m: int):
    """J_y and J_u of f over B × u as (mid, rad) pairs, shapes (cells, n, n) and (cells, n, m)."""
    cells = B.lo.shape[0]
    eye = np.eye(n + m)
    dx = np.broadcast_to(eye[:n], (cells, n, n + m))
    du = np.broadcast_to(eye[n:], (cells, m, n + m))
    with np.errstate(all="ignore"):
        out = as_jet(f(Jet(B.lo, B.hi, dx, dx), Jet(u.lo, u.hi, du, du)))
    dlo = np.nan_to_num(out.dlo, nan=-np.inf)
    dhi = np.nan_to_num(out.dhi, nan=np.inf)
    my, ry = iv.midrad((dlo[..., :n], dhi[..., :n]))
    mu, ru = iv.midrad((dlo[..., n:], dhi[..., n:]))
    return (my, ry), (mu, ru), (out.lo, out.hi)


def _finite(*arrays) -> np.ndarray:
    ok = np.ones(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        ok &= np.all(np.isfinite(a.reshape(a.shape[0], -1)), axis=1)
    return ok


def _imatmul(a, b):
    """Interval product of batched interval matrices a (B, p, q) and b (B, q, r), mid-rad."""
    am, ar = iv.midrad(a)
    bm, br = iv.midrad(b)
    m = am @ bm
    r = np.abs(am) @ br + ar @ (np.abs(bm) + br)
    q = a[0].shape[-1] + 2
    r = iv.up((r + q * 2 * iv.U * (np.abs(am) @ np.abs(bm) + r)) * (1 + 4 * iv.U))
    return iv.down(m - r), iv.up(m + r)


def _substep(f, yc: Jet, yb: Jet, uc: Jet, ub: Jet, rz: np.ndarray, tau: float):
    n, m = yc.shape[-1], uc.shape[-1]
    cells = yc.lo.shape[0]
    Bc, Bb = _picard(f, _box(yc), _box(uc), tau), _picard(f, _box(yb), _box(ub), tau)
    (A0, R), (B0, RB), _ = _jacobians(f, Bb, _box(ub), n, m)
    (A0c, Rc), _, _ = _jacobians(f, Bc, _box(uc), n, m)
    ok = _finite(A0, R, B0, RB, A0c, Rc)
    A0 = np.where(ok[:, None, None], A0, 0.0)
    A0c = np.where(ok[:, None, None], A0c, 0.0)
    a0 = _inf_norm(A0 * tau)
    a1 = _inf_norm((np.abs(A0) + np.nan_to_num(R, posinf=0.0)) * tau)
    r_norm = _inf_norm(np.nan_to_num(R, posinf=0.0))
    rb_norm = _inf_norm(np.nan_to_num(RB, posinf=0.0))
    b0_norm = _inf_norm(B0)
    E, F1, err = expm_enclosure(A0, tau)
    # sensitivities M, N (entrywise radii from ∞-norm bounds)
    rM = err + tau * np.exp(a0) * r_norm * np.exp(a1)
    FB = F1 @ B0
    rN = (tau * err * b0_norm + (m + 2) * 2 * iv.U * _inf_norm(np.abs(F1) @ np.abs(B0))
          + tau * np.exp(a0) * (r_norm * tau * np.exp(a1) * (b0_norm + rb_norm) + rb_norm))
    rM, rN = iv.up(rM * (1 + 1e-9)), iv.up(rN * (1 + 1e-9))
    M = (iv.down(E - rM[:, None, None]), iv.up(E + rM[:, None, None]))
    N = (iv.down(FB - rN[:, None, None]), iv.up(FB + rN[:, None, None]))
    D = (yb.dlo, yb.dhi)
    dU = (ub.dlo, ub.dhi) if ub.dlo is not None else (np.zeros((cells, m, D[0].shape[-1])),) * 2
    Dn = iv.add(_imatmul(M, D), _imatmul(N, dU))
    # centre value
    Ec, F1c, errc = expm_enclosure(A0c, tau)
    a0c = _inf_norm(A0c * tau)
    a1c = _inf_norm((np.abs(A0c) + np.nan_to_num(Rc, posinf=0.0)) * tau)
    fc = as_jet(f(_box(yc), _box(uc)))
    fm, fr = iv.midrad((fc.lo, fc.hi))
    step_m = np.einsum("bij,bj->bi", F1c, fm)
    fnorm = np.abs(fm).max(-1) + fr.max(-1)
    rs = (np.einsum("bij,bj->bi", np.abs(F1c), fr) + tau * errc[:, None] * fnorm[:, None]
          + (n + 2) * 2 * iv.U * np.einsum("bij,bj->bi", np.abs(F1c), np.abs(fm))
          + (tau * np.exp(a0c) * _inf_norm(np.nan_to_num(Rc, posinf=0.0)) * tau * np.exp(a1c)
             * fnorm)[:, None])
    rs = iv.up(rs * (1 + 1e-9))
    c_lo, c_hi = iv.add((yc.lo, yc.hi), (iv.down(step_m - rs), iv.up(step_m + rs)))
    # cell value: mean-value form, intersected with the a priori box
    spread = iv.up(np.einsum("bik,bk->bi", np.maximum(np.abs(Dn[0]), np.abs(Dn[1])), rz))
    b_lo = np.maximum(iv.down(c_lo - spread), Bb.lo)
    b_hi = np.minimum(iv.up(c_hi + spread), Bb.hi)
    bad = ~ok | ~_finite(c_lo, c_hi, Dn[0], Dn[1])
    inf = np.inf
    c_lo, c_hi = np.where(bad[:, None], -inf, c_lo), np.where(bad[:, None], inf, c_hi)
    b_lo, b_hi = np.where(bad[:, None], -inf, b_lo), np.where(bad[:, None], inf, b_hi)
    dlo = np.where(bad[:, None, None], -inf, Dn[0])
    dhi = np.where(bad[:, None, None], inf, Dn[1])
    return Jet(c_lo, c_hi), Jet(b_lo, b_hi, dlo, dhi)


def flow(loop, xc: Jet, xb: Jet, rz: np.ndarray) -> tuple[Jet, Jet]:
    """φ_dt over cells: (values at the centres, values and z-derivatives over the cells).

    ``xc`` holds the cells' centre states (values), ``xb`` the cells (values and derivatives
    ∂x/∂z), ``rz`` (cells, k) the cells' half-widths in z; the input held over the period is
    the loop's saturated control at each.
    """
    f = loop.bounded_plant.vector_field
    uc, ub = loop.control_jet(xc), loop.control_jet(xb)
    n = xc.shape[-1]
    # substeps from the Jacobian over the cells (the same for every cell of the batch)
    (A0, R), _, _ = _jacobians(f, _box(xb), _box(ub), n, uc.shape[-1])
    size = np.nan_to_num(_inf_norm(np.abs(A0) + R), nan=1e6, posinf=1e6)
    steps = int(min(_MAX_SUBSTEPS, max(1, math.ceil(loop.dt * float(size.max()) / _NORM_MAX))))
    tau = loop.dt / steps
    yc, yb = xc, xb
    for _ in range(steps):
        yc, yb = _substep(f, yc, yb, uc, ub, rz, tau)
    return yc, yb


def flow_jacobian(loop, X: Jet, U: Jet) -> Jet:
    """φ_dt over a box of states X and a box of held inputs U (independent), with its
    derivatives with respect to (x, u): ``X`` and ``U`` carry the n + m seed directions."""
    f = loop.bounded_plant.vector_field
    n, m = X.shape[-1], U.shape[-1]
    (A0, R), _, _ = _jacobians(f, _box(X), _box(U), n, m)
    size = np.nan_to_num(_inf_norm(np.abs(A0) + R), nan=1e6, posinf=1e6)
    steps = int(min(_MAX_SUBSTEPS, max(1, math.ceil(loop.dt * float(size.max()) / _NORM_MAX))))
    tau = loop.dt / steps
    mid_x, mid_u = 0.5 * X.lo + 0.5 * X.hi, 0.5 * U.lo + 0.5 * U.hi
    rz = np.concatenate([0.5 * (X.hi - X.lo), 0.5 * (U.hi - U.lo)], axis=-1)
    yc, yb = Jet(mid_x, mid_x), X
    for _ in range(steps):
        yc, yb = _substep(f, yc, yb, Jet(mid_u, mid_u), U, rz, tau)
    return yb
