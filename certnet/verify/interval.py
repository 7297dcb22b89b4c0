"""Interval arithmetic on numpy arrays, rounded outward: the ground truth of every region bound.

An interval array is a pair (lo, hi) of float64 arrays with lo ≤ hi elementwise; the functions
here return pairs that contain the exact real result for every choice of arguments inside the
argument intervals. Round-off is accounted for:

* a single correctly rounded operation (+, −, ×, ÷, √) is off by at most ½ ulp, so its result
  is moved at least one ulp outward (by |x|·2⁻⁵² + 2⁻¹⁰⁷⁴, :func:`up` / :func:`down`);
* a library function (exp, log, sin, cos, tanh, erf, atan) is trusted to within 1 ulp (glibc's
  documented accuracy for these in double precision) and moved two ulps outward;
* a sum of n products (a matrix product) is off by at most γ_n Σ|aᵢbᵢ|, γ_n = n u / (1 − n u),
  u = 2⁻⁵³ (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1), which is added to
  the radius.

Unbounded or undefined results (1/[a, b] with 0 ∈ [a, b], log or √ of an interval reaching
below 0) give (−inf, inf) on the elements concerned, never NaN, and the operation is noted
(:func:`unbounded`): a region holding a singularity is then not certified there, and a caller
that needs a bound (the equilibrium) raises :class:`~certnet.errors.BoundError` naming it.

Ranges of derivatives (:data:`DERIVATIVES`) follow the same rules; for a piecewise smooth
function they contain every one-sided derivative (the Clarke generalised gradient), which is
what the mean-value form f(x) − f(c) ∈ f'([x, c]) (x − c) needs.
"""

from __future__ import annotations

import math

import numpy as np

_UNBOUNDED: set[str] = set()


def unbounded(clear: bool = False) -> list[str]:
    """The operations that gave unbounded results since the last clear (sorted)."""
    out = sorted(_UNBOUNDED)
    if clear:
        _UNBOUNDED.clear()
    return out


def note_unbounded(what: str) -> None:
    """Record that ``what`` gave an unbounded result (for :func:`unbounded`)."""
    _UNBOUNDED.add(what)


def _undefined(mask: np.ndarray, lo: np.ndarray, hi: np.ndarray, what: str):
    if np.any(mask):
        _UNBOUNDED.add(what)
        lo = np.where(mask, -np.inf, lo)
        hi = np.where(mask, np.inf, hi)
    return lo, hi

__all__ = [
    "unbounded",
    "note_unbounded",
    "down",
    "up",
    "add",
    "sub",
    "mul",
    "scale",
    "recip",
    "square",
    "sqrt",
    "hull",
    "midrad",
    "matmul_const",
    "FUNCTIONS",
    "DERIVATIVES",
]

U = 2.0**-53  # unit round-off of float64
_INF = np.inf


_EPS = 2.0**-52  # one ulp relative: |x|·2⁻⁵² ≥ ulp(x) for every normal x
_TINY = 5e-324  # the smallest subnormal: one ulp at 0


_MAX = 1.7976931348623157e308  # the largest float64


def _moved(x, ulps: int, sign: float) -> np.ndarray:
    # |x| is capped at the largest float so that ±inf stays where it is; a lower end of +inf
    # (an overflowed finite result) becomes the largest float, an upper end of −inf its negative
    d = np.minimum(np.abs(x), _MAX) * (sign * ulps * _EPS)
    d += sign * ulps * _TINY
    x = x + d
    return np.minimum(x, _MAX) if sign < 0 else np.maximum(x, -_MAX)


def down(x: np.ndarray, ulps: int = 1) -> np.ndarray:
    """x moved at least ``ulps`` floating-point numbers towards −∞ (x − ulps·(|x|·2⁻⁵² +
    2⁻¹⁰⁷⁴), which is cheaper than ``np.nextafter`` and never closer to x)."""
    return _moved(np.asarray(x, dtype=np.float64), ulps, -1.0)


def up(x: np.ndarray, ulps: int = 1) -> np.ndarray:
    """x moved at least ``ulps`` floating-point numbers towards +∞."""
    return _moved(np.asarray(x, dtype=np.float64), ulps, 1.0)


def _clean(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # NaN only arises from inf − inf or 0 · inf: the result is then unbounded
    lo = np.where(np.isnan(lo), -_INF, lo)
    hi = np.where(np.isnan(hi), _INF, hi)
    return lo, hi


def add(a, b):
    """[a] + [b]."""
    return _clean(down(a[0] + b[0]), up(a[1] + b[1]))


def sub(a, b):
    """[a] − [b]."""
    return _clean(down(a[0] - b[1]), up(a[1] - b[0]))


def mul(a, b):
    """[a] · [b] (the four endpoint products)."""
    with np.errstate(invalid="ignore", over="ignore"):
        p = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    p = [np.where(np.isnan(q), 0.0, q) for q in p]  # 0 · inf: 0 · (any finite) = 0
    lo = np.minimum(np.minimum(p[0], p[1]), np.minimum(p[2], p[3]))
    hi = np.maximum(np.maximum(p[0], p[1]), np.maximum(p[2], p[3]))
    return down(lo), up(hi)


def scale(f, d):
    """[f] · [d] in mid-radius form, for a factor f broadcast against d (the chain rule's
    f'(x) · dx): m = m_f m_d, r = |m_f| r_d + r_f (|m_d| + r_d), plus the products' round-off.
    Cheaper than :func:`mul` and as tight when either interval is narrow."""
    fm, fr = midrad(f)
    dm, dr = midrad(d)
    with np.errstate(invalid="ignore", over="ignore"):
        m = fm * dm
        r = np.abs(fm) * dr + fr * (np.abs(dm) + dr)
        r = r + (np.abs(m) + r) * (4 * U)
        lo, hi = m - r, m + r
    return _clean(down(lo), up(hi))


def recip(a, what: str = "a division"):
    """1 / [a]; unbounded where 0 ∈ [a]."""
    lo, hi = a
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = _clean(down(1.0 / hi), up(1.0 / lo))  # an overflowed end becomes unbounded
    return _undefined((lo <= 0) & (hi >= 0), *r, f"{what} by an interval that contains 0")


def square(a):
    """[a]² (tight: its lower end is 0 when the interval holds 0)."""
    lo, hi = a
    pos, neg = lo >= 0, hi <= 0
    l2, h2 = lo * lo, hi * hi
    rlo = np.where(pos, down(l2), np.where(neg, down(h2), 0.0))
    rhi = np.where(pos, up(h2), np.where(neg, up(l2), up(np.maximum(l2, h2))))
    return np.maximum(rlo, 0.0), rhi


def sqrt(a):
    """√[a]; unbounded where the interval reaches below 0."""
    lo, hi = a
    with np.errstate(invalid="ignore"):
        r = np.maximum(down(np.sqrt(np.maximum(lo, 0.0))), 0.0), up(np.sqrt(np.maximum(hi, 0.0)))
    return _undefined(lo < 0, *r, "a square root of an interval reaching below 0")


def hull(a, b):
    """The smallest interval containing [a] and [b]."""
    return np.minimum(a[0], b[0]), np.maximum(a[1], b[1])


def midrad(a) -> tuple[np.ndarray, np.ndarray]:
    """(m, r) with [a] ⊆ [m − r, m + r] (m = 0, r = inf for an unbounded interval)."""
    lo, hi = a
    with np.errstate(invalid="ignore", over="ignore"):
        m = 0.5 * lo + 0.5 * hi
        r = up(np.maximum(m - lo, hi - m))
    bad = ~np.isfinite(m) | ~np.isfinite(r)
    if np.any(bad):
        m = np.where(bad, 0.0, m)
        r = np.where(bad, np.inf, r)
    return m, r


def matmul_const(a, w: np.ndarray, axis: int = -1):
    """Σ_j [a]_{…j…} w_{ij} along ``axis`` of ``a`` (which becomes w's output axis).

    Mid-radius form: m ↦ w m, r ↦ |w| r, plus γ_n (|w| |m| + |w| r) for the round-off of both
    products and the final rounding. ``w`` has shape (out, n); the interval's ``axis`` (the
    last or the second to last) has n.
    """
    w = np.asarray(w, dtype=np.float64)
    m, r = midrad(a)
    aw = np.abs(w)
    last = axis in (-1, m.ndim - 1)
    if not last and axis not in (-2, m.ndim - 2):
        raise ValueError("matmul_const contracts the last or the second to last axis")
    def prod(x, v):  # one 2-D matrix product (a batch of small ones is far slower)
        if last:
            return (x.reshape(-1, x.shape[-1]) @ v.T).reshape(x.shape[:-1] + (v.shape[0],))
        xt = np.swapaxes(x, -1, -2)
        out = (xt.reshape(-1, xt.shape[-1]) @ v.T).reshape(xt.shape[:-1] + (v.shape[0],))
        return np.swapaxes(out, -1, -2)

    ym = prod(m, w)
    yr = prod(r, aw)
    n = w.shape[1] + 2
    gam = n * U / (1 - n * U)
    yr = up((yr + gam * (prod(np.abs(m), aw) + yr)) * (1 + 4 * U))
    return _clean(down(ym - yr), up(ym + yr))


# ------------------------------------------------------------------ elementary functions
def _lib(f):
    """A monotone increasing library function, two ulps outward."""

    def rng(a):
        with np.errstate(over="ignore", invalid="ignore"):
            return down(f(a[0]), 2), up(f(a[1]), 2)

    return rng


def _exp(a):
    lo, hi = _lib(np.exp)(a)
    return np.maximum(lo, 0.0), hi


def _log(a):
    with np.errstate(divide="ignore", invalid="ignore"):
        r = _lib(np.log)((np.maximum(a[0], 0.0), np.maximum(a[1], 0.0)))
    return _undefined(a[0] <= 0, *r, "a logarithm of an interval reaching 0 or below")


def _tanh(a):
    lo, hi = _lib(np.tanh)(a)
    return np.maximum(lo, -1.0), np.minimum(hi, 1.0)


def _sigmoid_point(x):
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-x)), np.exp(x) / (1.0 + np.exp(x)))


def _sigmoid(a):
    # a few correctly rounded operations on top of exp: four ulps plus an absolute 1e-300
    lo = down(_sigmoid_point(a[0]), 4) - 1e-300
    hi = up(_sigmoid_point(a[1]), 4) + 1e-300
    return np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)


def _contains(lo, hi, point, period):
    """Whether [lo, hi] contains point + k·period for some integer k (conservatively: a
    candidate within 1e-12 relative of an endpoint counts as inside)."""
    k = np.ceil((lo - point) / period)
    cand = point + k * period
    slack = 1e-12 * (1.0 + np.abs(lo) + np.abs(hi))
    return cand <= hi + slack


def _periodic(f, peak, trough):
    def rng(a):
        lo, hi = a
        wide = (hi - lo) >= 2 * math.pi
        flo, fhi = f(lo), f(hi)
        rlo = down(np.minimum(flo, fhi), 2)
        rhi = up(np.maximum(flo, fhi), 2)
        rhi = np.where(wide | _contains(lo, hi, peak, 2 * math.pi), 1.0, rhi)
        rlo = np.where(wide | _contains(lo, hi, trough, 2 * math.pi), -1.0, rlo)
        return np.maximum(rlo, -1.0), np.minimum(rhi, 1.0)

    return rng


_sin = _periodic(np.sin, math.pi / 2, -math.pi / 2)
_cos = _periodic(np.cos, 0.0, math.pi)


def _erf_point(x):
    from scipy.special import erf

    return erf(x)


def _erf(a):
    lo, hi = _lib(_erf_point)(a)
    return np.maximum(lo - 1e-16, -1.0), np.minimum(hi + 1e-16, 1.0)


def _abs(a):
    lo, hi = a
    rlo = np.where(lo >= 0, lo, np.where(hi <= 0, -hi, 0.0))
    rhi = np.maximum(np.abs(lo), np.abs(hi))
    return rlo, rhi


def _nearest_zero(a):
    """min |x| and max |x| over [a]."""
    lo, hi = a
    near = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    return near, np.maximum(np.abs(lo), np.abs(hi))


def _dtanh(a):
    near, far = _nearest_zero(a)
    t_near, t_far = np.tanh(near), np.tanh(far)
    return np.clip(1.0 - t_far * t_far - 1e-15, 0.0, 1.0), np.clip(
        1.0 - t_near * t_near + 1e-15, 0.0, 1.0
    )


def _dsigmoid(a):
    near, far = _nearest_zero(a)
    s_near, s_far = _sigmoid_point(near), _sigmoid_point(far)
    return np.clip(s_far * (1 - s_far) - 1e-16, 0.0, 0.25), np.clip(
        s_near * (1 - s_near) + 1e-16, 0.0, 0.25
    )


def _dsin(a):
    return _cos(a)


def _dcos(a):
    lo, hi = _sin(a)
    return -hi, -lo


def _dlog(a):
    return recip(a, "the derivative of log (1/x)")


def _datan(a):
    near, far = _nearest_zero(a)
    return down(1.0 / up(1.0 + far * far), 2), up(1.0 / down(1.0 + near * near), 2)


def _derf(a):
    near, far = _nearest_zero(a)
    c = 2.0 / math.sqrt(math.pi)
    return down(c * np.exp(-up(far * far)), 3), up(c * np.exp(-down(near * near)), 3)


def _dabs(a):
    lo, hi = a
    return np.where(lo > 0, 1.0, -1.0), np.where(hi < 0, -1.0, 1.0)


#: name → range function [a] ↦ f([a]) for the monotone and periodic elementary functions.
FUNCTIONS = {
    "exp": _exp,
    "log": _log,
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "sin": _sin,
    "cos": _cos,
    "atan": _lib(np.arctan),
    "erf": _erf,
    "abs": _abs,
}

#: name → range function of the derivative, [a] ↦ f'([a]) (Clarke hull at kinks).
DERIVATIVES = {
    "exp": _exp,
    "log": _dlog,
    "tanh": _dtanh,
    "sigmoid": _dsigmoid,
    "sin": _dsin,
    "cos": _dcos,
    "atan": _datan,
    "erf": _derf,
    "abs": _dabs,
}
