"""Products with a proved bound on their rounding error, for the weights a certificate uses.

Certificates are proved for the float64 matrices W̃ that certnet *computes* (scalings folded in,
layers joined by an identity multiplied out). Each such matrix carries an entrywise bound E with
|W − W̃| ≤ E, W the exact (real-arithmetic) matrix of the user's network; E = 0 where the
computation is exact (no arithmetic, or scaling by powers of two without underflow).

* scaling by a vector s (``W diag(s)``, ``diag(s) W``): one multiplication per entry, so
  |ws − fl(ws)| ≤ u|ws| ≤ γ₁|fl(ws)| (no underflow), plus 2⁻¹⁰⁷⁴ where the result is subnormal;
* a product A·B of matrices with bounds E_A, E_B: the float64 product P̃ = fl(Ã B̃) has
  |ÃB̃ − P̃| ≤ γ_n |Ã||B̃| (Higham, *Accuracy and Stability*, Thm 3.5; any summation order, so
  also BLAS with FMA or blocking), and then
  |AB − P̃| ≤ γ_n|Ã||B̃| + |Ã|E_B + E_A|B̃| + E_A E_B.
  When that bound is not negligible (‖·‖_F > 2⁻³⁰ ‖P̃‖_F: cancellation), the product is
  recomputed with Ogita–Rump–Oishi's Dot2 (error-free TwoProduct/TwoSum; SIAM J. Sci. Comput.
  26, 2005, their Dot2 error bound): |ÃB̃ − P̃| ≤ u|P̃| + γ_n²|Ã||B̃| up to a factor 1/(1−u), i.e. as if
  computed in twice the working precision and then rounded.

Every bound is itself computed in float64 and then rounded *up* (:func:`up`): a sum of n
non-negative terms computed in floating point is ≥ (1 − γ_n) times the exact sum.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["U", "gamma", "up", "frob_up", "spectral_norm_up", "scale_err", "matmul_err", "dot2"]

U = float(np.finfo(np.float64).eps / 2)  # unit round-off 2⁻⁵³
_TINY = 2.0**-1074  # smallest subnormal: an absolute bound on the error of an underflow
_NORMAL = 2.0**-1022
_SAFE = 2.0**300  # Dot2's TwoProduct is error-free when every |entry| is in [2⁻³⁰⁰, 2³⁰⁰]


def gamma(n: int) -> float:
    """γ_n = n u / (1 − n u)."""
    return n * U / (1.0 - n * U)


def up(x, n: int):
    """x computed with at most n roundings of non-negative terms, rounded up to a bound of the
    exact value: x (1 + 2γ_{n+1}) one ulp up (1/(1 − γ_n) ≤ 1 + 2γ_n for γ_n ≤ 1/2)."""
    return np.nextafter(np.asarray(x, dtype=np.float64) * (1.0 + 2.0 * gamma(n + 1)), np.inf)


def frob_up(e) -> float:
    """An upper bound on ‖E‖_F (hence on ‖E‖₂) of a non-negative matrix; 0 for None or 0."""
    if e is None or e.size == 0 or not np.any(e):
        return 0.0
    return float(up(np.linalg.norm(e), e.size + 1))


def spectral_norm_up(w: np.ndarray) -> float:
    """A *proved* upper bound s ≥ ‖W‖₂ of a float64 matrix, a few ulps to ~1e-8 (relative)
    above σ_max.

    LAPACK's eigenvalues carry no guaranteed error bound, so they only give the candidate.
    W is first scaled by a power of two so that max|w_ij| ∈ [1/2, 1) (exact, except entries
    that underflow: their error, ≤ 2⁻¹⁰⁷⁴ each, is added). With G = WᵀW the smaller Gram
    matrix (k × k, inner dimension p) and Ĝ = fl(G), |Ĝ − G| ≤ γ_p |W|ᵀ|W|, so
    ‖Ĝ − G‖₂ ≤ d_form := γ_p ‖W‖_F² (rounded up). For a float t, the float matrix A =
    fl(t I − Ĝ) − (d_form + d_diag) I with its diagonal rounded down (d_diag = u (t + max Ĝ_ii)
    covers the rounding of t − Ĝ_ii) satisfies t I − G ⪰ A; Rump's theorem (BIT 46, 2006)
    proves A ≻ 0 when fl(A − cI) has a floating-point Cholesky factorisation,
    c = γ_{k+1}/(1 − 2γ_{k+1}) tr A + 4k(2(k + 2) + t) 2⁻¹⁰⁷⁴ (rounded up). Then ‖W‖₂² < t.
    t starts at λ̃_max(Ĝ) plus twice the margins and grows by 4× the margins if the
    factorisation fails; the fallback ‖W‖_F (rounded up) is always a bound. 0 for an empty
    or zero matrix, inf if the bound overflows.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.size == 0 or not np.any(w):
        return 0.0
    if not np.isfinite(w).all():
        return math.inf
    e = int(np.frexp(np.abs(w).max())[1])
    a = np.ldexp(w, -e)
    under = float(up(math.sqrt(w.size) * 2.0**-1074, 2)) if e > 0 else 0.0
    if a.shape[0] < a.shape[1]:
        a = a.T  # G = aᵀa is the smaller Gram matrix
    p, k = a.shape
    frob2 = float(up(np.einsum("ij,ij->", a, a), a.size + 1))
    best = math.sqrt(frob2)
    g = a.T @ a
    d_form = float(up(gamma(p) * frob2, 2))
    gk = gamma(k + 1)
    lam = max(float(np.linalg.eigvalsh(g)[-1]), 0.0)
    extra = d_form + 4 * U * lam + gk / (1 - 2 * gk) * k * lam + 8 * k * U * lam
    for _ in range(6):
        t = float(up(lam + 2.0 * extra, 3))
        if t >= frob2:
            break
        m = -g
        m[np.diag_indices(k)] += t
        d_diag = U * (t + float(np.abs(np.diag(g)).max()))
        m[np.diag_indices(k)] -= float(up(d_form + d_diag, 2))
        m[np.diag_indices(k)] = np.nextafter(m.diagonal(), -np.inf)  # ≤ the exact difference
        tr = float(up(max(float(np.trace(m)), 0.0), k + 1))
        c = float(up(gk / (1 - 2 * gk) * tr + 4 * k * (2 * (k + 2) + t) * 2.0**-1074, 4))
        m[np.diag_indices(k)] -= c
        try:
            np.linalg.cholesky(m)
        except np.linalg.LinAlgError:
            extra *= 4.0
            continue
        best = min(best, math.sqrt(t))  # ‖W‖₂ < √t
        break
    # √ is correctly rounded: one ulp up bounds the root; then undo the exact scaling
    bound = float(np.nextafter(np.nextafter(best, math.inf) + under, math.inf))
    return float(np.ldexp(bound, e))


def _is_pow2(s: np.ndarray) -> np.ndarray:
    m, _ = np.frexp(s)
    return np.abs(m) == 0.5


def scale_err(w: np.ndarray, e, s: np.ndarray, axis: int):
    """(fl(W̃ s), E') for W̃ scaled by ``s`` along ``axis`` (1: columns, W diag(s); 0: rows).

    ``e`` bounds |W − W̃| (None for exact); the result bounds |W s − fl(W̃ s)|, or is None when
    the product is exact (s powers of two or zero, no underflow, ``e`` None).
    """
    s = np.asarray(s, dtype=np.float64)
    sb = s[None, :] if axis == 1 else s[:, None]
    r = w * sb
    exact = (_is_pow2(sb) | (sb == 0)) & (
        (np.abs(r) >= _NORMAL) | (r == 0) & ((w == 0) | (sb == 0))
    )
    out = None
    if not exact.all():
        out = np.where(exact, 0.0, up(gamma(1) * np.abs(r), 1) + _TINY)
    if e is not None:
        prop = up(e * np.abs(sb), 1) + np.where(e > 0, _TINY, 0.0)
        out = prop if out is None else up(out + prop, 2)
    return r, out


def _split(a):
    c = a * 134217729.0  # 2²⁷ + 1 (Veltkamp)
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, al * bl - (((p - ah * bh) - al * bh) - ah * bl)


def _two_sum(a, b):
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def dot2(a: np.ndarray, b: np.ndarray):
    """(P̃, D): P̃ ≈ A B by Dot2 (Ogita, Rump & Oishi 2005) and D ≥ |AB − P̃| entrywise.

    Needs every non-zero |entry| of A and B in [2⁻³⁰⁰, 2³⁰⁰] (no overflow or underflow in the
    error-free transformations); ``None`` otherwise. Costs n vectorised sweeps over m × p.
    """
    nz = np.concatenate([np.abs(a[a != 0]), np.abs(b[b != 0])])
    if nz.size and (nz.max() > _SAFE or nz.min() < 1.0 / _SAFE):
        return None
    n = a.shape[1]
    p = np.zeros((a.shape[0], b.shape[1]))
    s = np.zeros_like(p)
    for k in range(n):
        h, r = _two_prod(a[:, k : k + 1], b[k : k + 1, :])
        p, q = _two_sum(p, h)
        s = s + (q + r)
    res = p + s
    bound = np.abs(a) @ np.abs(b)
    d = up((U * np.abs(res) + gamma(n) ** 2 * up(bound, n)) / (1.0 - U), 3) + (4 * n + 4) * _TINY
    return res, d


def matmul_err(a: np.ndarray, ea, b: np.ndarray, eb):
    """(P̃, E) with |AB − P̃| ≤ E, for |A − a| ≤ ea and |B − b| ≤ eb (None: exact).

    Plain float64 product with Higham's bound; Dot2 when that bound exceeds 2⁻³⁰ ‖P̃‖_F.
    """
    n = a.shape[1]
    p = a @ b
    aa, ab_ = np.abs(a), np.abs(b)
    d = up(gamma(n) * up(aa @ ab_, n), 2) + (2 * n + 2) * _TINY
    if np.linalg.norm(d) > 2.0**-30 * np.linalg.norm(p):
        r = dot2(a, b)
        if r is not None:
            p, d = r
    terms = [d]
    if eb is not None:
        terms.append(aa @ eb)
    if ea is not None:
        terms.append(ea @ ab_)
    if ea is not None and eb is not None:
        terms.append(ea @ eb)
    e = up(sum(terms), n + 4) if len(terms) > 1 else d
    return p, e
