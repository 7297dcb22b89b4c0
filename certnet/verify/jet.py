"""Jets: sound enclosures of a function and of its derivatives over a box, by running its code.

A :class:`Jet` stands for an array-valued quantity q(x) that depends on a point x of a box X:
it holds intervals [lo, hi] ∋ q(x) and [dlo, dhi] ∋ ∂q/∂x (shape of q plus one axis for the k
directions of x), valid for every x ∈ X at once (forward-mode automatic differentiation in
interval arithmetic, :mod:`certnet.verify.interval`). Code written for torch tensors or numpy
arrays runs on jets unchanged: a Jet answers the torch function protocol (``__torch_function__``)
and numpy's (``__array_ufunc__``, ``__array_function__``), so ``torch.sin(x[:, 0])``,
``np.clip(u, -1, 1)``, ``x @ A.T`` and arithmetic with constants all produce jets.

What the code may do: arithmetic, powers, the elementary functions of
:data:`~certnet.verify.interval.FUNCTIONS` (and sqrt, square, clamp/clip, max/min, relu,
softplus, elu, leaky relu, silu, gelu), indexing, stacking, reshaping, sums and products with
constant matrices. Anything else — an unknown function, Python ``if`` on a state-dependent
value, ``torch.where`` whose condition is undecided on the box (a discontinuity) — is refused
or made unbounded, so a bound is never wrong: it is either proved or reported as missing,
naming the operation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from certnet.errors import UnsupportedOperation
from certnet.verify import interval as iv

__all__ = ["Jet", "Decision", "as_jet", "UnsupportedOperation"]


def _const(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


class Decision:
    """A comparison of jets over a box: ``true`` where it holds for every point, ``false``
    where it fails for every point, neither where the box straddles it."""

    def __init__(self, true: np.ndarray, false: np.ndarray):
        self.true, self.false = true, false

    def __bool__(self) -> bool:
        if np.all(self.true):
            return True
        if np.all(self.false):
            return False
        raise UnsupportedOperation(
            "the code branches (Python `if`/`and`/`or`) on a comparison that depends on the "
            "state and is not decided on the region; write the branch with torch.where or "
            "torch.clamp so that certnet can bound both sides"
        )

    def __invert__(self) -> Decision:
        return Decision(self.false, self.true)

    def all(self, dim=None) -> Decision:
        """Holds everywhere when it holds for every element (``dim``: along that axis)."""
        return Decision(np.all(self.true, axis=dim), np.any(self.false, axis=dim))

    def any(self, dim=None) -> Decision:
        """Holds everywhere when one element holds everywhere (a sufficient test)."""
        return Decision(np.any(self.true, axis=dim), np.all(self.false, axis=dim))

    def __and__(self, other: Decision) -> Decision:
        return Decision(self.true & other.true, self.false | other.false)

    def __or__(self, other: Decision) -> Decision:
        return Decision(self.true | other.true, self.false & other.false)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return Jet.__torch_function__(func, types, args, kwargs)


class Jet:
    """Enclosure of q(x) and ∂q/∂x over a box (see the module docstring).

    Parameters
    ----------
    lo, hi : ndarray
        Bounds of the value, any shape S.
    dlo, dhi : ndarray, optional
        Bounds of the derivative, shape S + (k,); None for a quantity whose derivative is not
        tracked (constants, or a jet made by :meth:`box` with ``derivatives=False``).
    """

    __array_priority__ = 1000  # ndarray (op) Jet defers to the Jet

    def __init__(self, lo, hi, dlo=None, dhi=None):
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        self.dlo = None if dlo is None else np.asarray(dlo, dtype=np.float64)
        self.dhi = None if dhi is None else np.asarray(dhi, dtype=np.float64)

    # ------------------------------------------------------------------ construction
    @classmethod
    def box(cls, lo, hi, *, derivatives: bool = True) -> Jet:
        """The variables x ∈ [lo, hi] themselves, shape (B, n): ∂x/∂x = I per row."""
        lo, hi = _const(lo), _const(hi)
        if not derivatives:
            return cls(lo, hi)
        eye = np.broadcast_to(np.eye(lo.shape[-1]), lo.shape + (lo.shape[-1],))
        return cls(lo, hi, eye, eye)

    @property
    def k(self) -> int | None:
        """Number of derivative directions (None when not tracked)."""
        return None if self.dlo is None else self.dlo.shape[-1]

    # ------------------------------------------------------------------ array-like surface
    shape = property(lambda self: self.lo.shape)
    ndim = property(lambda self: self.lo.ndim)
    dtype = torch.float64
    device = torch.device("cpu")
    requires_grad = False

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def __repr__(self) -> str:
        return f"Jet(shape={self.shape}, k={self.k})"

    @property
    def T(self) -> Jet:
        return self.permute(tuple(range(self.ndim))[::-1])

    @property
    def width(self) -> np.ndarray:
        return self.hi - self.lo

    # ------------------------------------------------------------------ structure
    def _map(self, f) -> Jet:
        """Apply the same indexing/reshaping ``f`` to values and derivatives (derivatives keep
        their last axis)."""
        dlo = dhi = None
        if self.dlo is not None:
            dlo, dhi = (_deriv_map(f, d) for d in (self.dlo, self.dhi))
        return Jet(f(self.lo), f(self.hi), dlo, dhi)

    def __getitem__(self, idx) -> Jet:
        idx = _const_index(idx)
        return self._map(lambda a: a[idx])

    def reshape(self, *shape) -> Jet:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return self._map(lambda a: a.reshape(shape))

    view = reshape

    def permute(self, *perm) -> Jet:
        perm = perm[0] if len(perm) == 1 and isinstance(perm[0], (tuple, list)) else perm
        return self._map(lambda a: np.transpose(a, perm))

    def transpose(self, *axes) -> Jet:
        """torch's ``transpose(dim0, dim1)`` (swap two axes); with no argument, numpy's (reverse
        all axes); with more, a permutation."""
        if len(axes) == 2:
            perm = list(range(self.ndim))
            a, b = (ax % self.ndim for ax in axes)
            perm[a], perm[b] = perm[b], perm[a]
            return self.permute(perm)
        return self.permute(axes or tuple(range(self.ndim))[::-1])

    def t(self) -> Jet:
        return self.transpose(1, 0)

    def unsqueeze(self, dim: int) -> Jet:
        d = dim if dim >= 0 else self.ndim + 1 + dim
        return self._map(lambda a: np.expand_dims(a, d))

    def squeeze(self, dim: int | None = None) -> Jet:
        if dim is None:
            axes = tuple(i for i, s in enumerate(self.shape) if s == 1)
        else:
            axes = (dim % self.ndim,)
        return self._map(lambda a: np.squeeze(a, axes))

    def to(self, *args, **kwargs) -> Jet:
        return self  # dtype and device casts: the jet is real-valued arithmetic (see docs)

    def double(self) -> Jet:
        return self

    float = detach = clone = contiguous = cpu = double

    def sum(self, dim=None, keepdim: bool = False, axis=None) -> Jet:
        ax = dim if axis is None else axis
        if ax is None:
            ax = tuple(range(self.ndim))
        return _sum(self, ax, keepdim)

    def mean(self, dim=None, keepdim: bool = False, axis=None) -> Jet:
        ax = dim if axis is None else axis
        n = self.lo.size if ax is None else np.prod([self.shape[a] for a in np.atleast_1d(ax)])
        return self.sum(dim=ax, keepdim=keepdim) / float(n)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, o):
        return _add(self, o)

    __radd__ = __add__

    def __sub__(self, o):
        return _add(self, -as_jet(o))

    def __rsub__(self, o):
        return _add(-self, o)

    def __neg__(self) -> Jet:
        return Jet(-self.hi, -self.lo, None if self.dlo is None else -self.dhi,
                   None if self.dlo is None else -self.dlo)

    def __pos__(self) -> Jet:
        return self

    def __mul__(self, o):
        return _mul(self, o)

    __rmul__ = __mul__

    def __truediv__(self, o):
        return _mul(self, _recip(as_jet(o)))

    def __rtruediv__(self, o):
        return _mul(as_jet(o), _recip(self))

    def __pow__(self, p):
        return _pow(self, p)

    def __matmul__(self, o):
        return _matmul(self, o)

    def __rmatmul__(self, o):
        return _rmatmul(o, self)

    # ------------------------------------------------------------------ comparisons
    def _cmp(self, o, strict_lt: bool) -> Decision:
        o = as_jet(o)
        if strict_lt:  # self < o
            return Decision(self.hi < o.lo, self.lo >= o.hi)
        return Decision(self.hi <= o.lo, self.lo > o.hi)  # self <= o

    def __lt__(self, o):
        return self._cmp(o, True)

    def __le__(self, o):
        return self._cmp(o, False)

    def __gt__(self, o):
        return as_jet(o)._cmp(self, True)

    def __ge__(self, o):
        return as_jet(o)._cmp(self, False)

    def __bool__(self):
        raise UnsupportedOperation(
            "the code takes the truth value of a state-dependent quantity; certnet cannot bound "
            "Python control flow on the state — write it with torch.where or torch.clamp"
        )

    def __float__(self):
        raise UnsupportedOperation(
            "the code converts a state-dependent quantity to a Python float (float(), .item(), "
            "math.*); use torch or numpy functions on it so that certnet can bound them"
        )

    item = tolist = numpy = __float__

    # ------------------------------------------------------------------ methods as functions
    def __getattr__(self, name: str):
        if name in _METHODS:
            return lambda *a, **k: _METHODS[name](self, *a, **k)
        raise AttributeError(
            f"certnet's interval jets have no method {name!r}: the code calls an operation "
            "certnet cannot bound; rewrite it with the supported torch/numpy functions "
            "(see certnet.verify.jet)"
        )

    # ------------------------------------------------------------------ protocols
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        impl = _TORCH.get(name)
        if impl is None:
            raise UnsupportedOperation(
                f"certnet cannot bound torch.{name} on the region; supported: "
                f"{', '.join(sorted(_TORCH))}"
            )
        return impl(*args, **kwargs)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        impl = _UFUNCS.get(ufunc.__name__) if method == "__call__" else None
        if impl is None or kwargs.get("out") is not None:
            raise UnsupportedOperation(
                f"certnet cannot bound numpy.{ufunc.__name__} ({method}) on the region; "
                f"supported ufuncs: {', '.join(sorted(_UFUNCS))}"
            )
        return impl(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        impl = _NPFUNCS.get(func.__name__)
        if impl is None:
            raise UnsupportedOperation(
                f"certnet cannot bound numpy.{func.__name__} on the region; supported: "
                f"{', '.join(sorted(_NPFUNCS))}"
            )
        return impl(*args, **kwargs)


def as_jet(x: Any) -> Jet:
    """``x`` as a Jet (a constant if it is not one); object arrays of jets are stacked."""
    if isinstance(x, Jet):
        return x
    if isinstance(x, np.ndarray) and x.dtype == object:
        return stack([as_jet(v) for v in x], 0)
    if isinstance(x, (list, tuple)) and any(isinstance(v, Jet) for v in x):
        return stack([as_jet(v) for v in x], 0)
    c = _const(x)
    return Jet(c, c)


# ------------------------------------------------------------------ helpers
def _const_index(idx):
    if isinstance(idx, tuple):
        return tuple(_const_index(i) for i in idx)
    if isinstance(idx, torch.Tensor):
        return idx.numpy()
    return idx


def _deriv_map(f, d):
    """Apply a value-shaped map to a derivative array by moving its last axis to the front."""
    moved = np.moveaxis(d, -1, 0)
    out = np.stack([f(moved[j]) for j in range(moved.shape[0])], 0)
    return np.moveaxis(out, 0, -1)


def _pair(j: Jet):
    return j.lo, j.hi


def _dpair(j: Jet, shape, k):
    if j.dlo is None:
        z = np.zeros(shape + (k,))
        return z, z
    return np.broadcast_to(j.dlo, shape + (k,)), np.broadcast_to(j.dhi, shape + (k,))


def _k(*jets: Jet) -> int | None:
    ks = {j.k for j in jets if j.k is not None}
    if len(ks) > 1:
        raise ValueError(f"jets with different numbers of derivative directions: {sorted(ks)}")
    return ks.pop() if ks else None


def _add(a, b) -> Jet:
    a, b = as_jet(a), as_jet(b)
    lo, hi = iv.add(_pair(a), _pair(b))
    k = _k(a, b)
    if k is None:
        return Jet(lo, hi)
    s = lo.shape
    (alo, ahi), (blo, bhi) = _dpair(a, s, k), _dpair(b, s, k)
    dlo, dhi = iv.add((alo, ahi), (blo, bhi))
    return Jet(lo, hi, dlo, dhi)


def _scale_deriv(f, d, shape, k):
    """Interval product of a value-shaped factor f with derivative intervals d."""
    flo = np.broadcast_to(f[0], shape)[..., None]
    fhi = np.broadcast_to(f[1], shape)[..., None]
    return iv.scale((flo, fhi), d)


def _mul(a, b) -> Jet:
    a, b = as_jet(a), as_jet(b)
    lo, hi = iv.mul(_pair(a), _pair(b))
    k = _k(a, b)
    if k is None:
        return Jet(lo, hi)
    s = lo.shape
    terms = []
    if b.dlo is not None:
        terms.append(_scale_deriv(_pair(a), _dpair(b, s, k), s, k))
    if a.dlo is not None:
        terms.append(_scale_deriv(_pair(b), _dpair(a, s, k), s, k))
    d = terms[0] if len(terms) == 1 else iv.add(terms[0], terms[1])
    return Jet(lo, hi, *d)


def _chain(x: Jet, value, deriv) -> Jet:
    """f(x) from its value range and the range of f' over x."""
    if x.dlo is None:
        return Jet(*value)
    s = value[0].shape
    d = _scale_deriv(deriv, _dpair(x, s, x.k), s, x.k)
    return Jet(value[0], value[1], *d)


def _recip(x: Jet) -> Jet:
    r = iv.recip(_pair(x))
    return _chain(x, r, (-iv.square(r)[1], -iv.square(r)[0]))


def unary(name: str, x) -> Jet:
    """An elementary function of :data:`~certnet.verify.interval.FUNCTIONS` applied to x."""
    x = as_jet(x)
    a = _pair(x)
    return _chain(x, iv.FUNCTIONS[name](a), iv.DERIVATIVES[name](a))


def _square(x) -> Jet:
    x = as_jet(x)
    a = _pair(x)
    return _chain(x, iv.square(a), iv.mul(a, (np.full_like(a[0], 2.0), np.full_like(a[0], 2.0))))


def _sqrt(x) -> Jet:
    x = as_jet(x)
    r = iv.sqrt(_pair(x))
    if x.dlo is None:
        return Jet(*r)
    two_r = (2.0 * r[0], 2.0 * r[1])
    return _chain(x, r, iv.recip(two_r, "the derivative of sqrt (1/(2√x)) at 0"))


def _pow(x, p) -> Jet:
    if isinstance(p, Jet):
        raise UnsupportedOperation("a power with a state-dependent exponent is not supported")
    p = float(p)
    if p == int(p) and p >= 0:
        n = int(p)
        if n == 0:
            return as_jet(np.ones(as_jet(x).shape))
        out, base = None, as_jet(x)
        while n:
            if n & 1:
                out = base if out is None else _mul(out, base)
            n >>= 1
            if n:
                base = _square(base)
        return out
    if p == 0.5:
        return _sqrt(x)
    if p == int(p):
        return _recip(_pow(x, -p))
    return unary("exp", _mul(unary("log", x), p))


def clamp(x, min=None, max=None) -> Jet:
    """clip(x, min, max) with constant or jet limits; derivative 1 inside, 0 outside, [0, 1]
    where the box reaches a limit."""
    x = as_jet(x)
    out = x
    if min is not None:
        out = maximum(out, min)
    if max is not None:
        out = minimum(out, max)
    return out


def _extreme(a, b, take_max: bool) -> Jet:
    a, b = as_jet(a), as_jet(b)
    f = np.maximum if take_max else np.minimum
    lo, hi = f(a.lo, b.lo), f(a.hi, b.hi)
    k = _k(a, b)
    if k is None:
        return Jet(lo, hi)
    s = lo.shape
    da, db = _dpair(a, s, k), _dpair(b, s, k)
    a_wins = (a.lo > b.hi) if take_max else (a.hi < b.lo)
    b_wins = (b.lo > a.hi) if take_max else (b.hi < a.lo)
    a_wins = np.broadcast_to(a_wins, s)[..., None]
    b_wins = np.broadcast_to(b_wins, s)[..., None]
    h = iv.hull(da, db)
    dlo = np.where(a_wins, da[0], np.where(b_wins, db[0], h[0]))
    dhi = np.where(a_wins, da[1], np.where(b_wins, db[1], h[1]))
    return Jet(lo, hi, dlo, dhi)


def maximum(a, b) -> Jet:
    """Elementwise max; its derivative is the hull of both where the box does not decide."""
    return _extreme(a, b, True)


def minimum(a, b) -> Jet:
    """Elementwise min."""
    return _extreme(a, b, False)


def where(cond, a, b) -> Jet:
    """torch.where / np.where: the decided branch; unbounded where the box straddles the
    condition (a discontinuity of the map there)."""
    a, b = as_jet(a), as_jet(b)
    if not isinstance(cond, Decision):
        c = np.asarray(_const(cond), dtype=bool)
        cond = Decision(c, ~c)
    shape = np.broadcast_shapes(a.shape, b.shape, cond.true.shape)
    t = np.broadcast_to(cond.true, shape)
    f = np.broadcast_to(cond.false, shape)
    if not np.all(t | f):
        iv.note_unbounded("torch.where on a condition that switches inside the region (a "
                          "jump unless both sides agree there; write it with torch.clamp, "
                          "torch.maximum or a smooth function if it is continuous)")
    lo = np.where(t, a.lo, np.where(f, b.lo, -np.inf))
    hi = np.where(t, a.hi, np.where(f, b.hi, np.inf))
    k = _k(a, b)
    if k is None:
        return Jet(lo, hi)
    da, db = _dpair(a, shape, k), _dpair(b, shape, k)
    tt, ff = t[..., None], f[..., None]
    dlo = np.where(tt, da[0], np.where(ff, db[0], -np.inf))
    dhi = np.where(tt, da[1], np.where(ff, db[1], np.inf))
    return Jet(lo, hi, dlo, dhi)


def _sum(x: Jet, ax, keepdim: bool) -> Jet:
    axes = tuple(a % x.ndim for a in np.atleast_1d(ax))
    n = int(np.prod([x.shape[a] for a in axes])) + 2
    gam = n * iv.U / (1 - n * iv.U)

    def s(lo, hi, axes):
        m, r = iv.midrad((lo, hi))
        sm = m.sum(axis=axes, keepdims=keepdim)
        sr = r.sum(axis=axes, keepdims=keepdim)
        sr = iv.up(sr + gam * (np.abs(m).sum(axis=axes, keepdims=keepdim) + sr))
        return iv.down(sm - sr), iv.up(sm + sr)

    lo, hi = s(x.lo, x.hi, axes)
    if x.dlo is None:
        return Jet(lo, hi)
    dlo, dhi = s(x.dlo, x.dhi, axes)
    return Jet(lo, hi, dlo, dhi)


def _matmul(x: Jet, w) -> Jet:
    """x @ w for a constant matrix w (x's last axis contracts with w's first)."""
    if isinstance(w, Jet):
        raise UnsupportedOperation("a product of two state-dependent matrices is not supported")
    w = _const(w)
    wt = w.T if w.ndim == 2 else w[:, None].T
    lo, hi = iv.matmul_const((x.lo, x.hi), wt, axis=-1)
    if w.ndim == 1:
        lo, hi = lo[..., 0], hi[..., 0]
    if x.dlo is None:
        return Jet(lo, hi)
    dlo, dhi = iv.matmul_const((x.dlo, x.dhi), wt, axis=-2)
    if w.ndim == 1:
        dlo, dhi = dlo[..., 0, :], dhi[..., 0, :]
    return Jet(lo, hi, dlo, dhi)


def _rmatmul(w, x: Jet) -> Jet:
    """w @ x for a constant matrix w: contracts w's last axis with x's first (numpy style for
    column vectors, e.g. A @ x with x of shape (n,) or (n, B))."""
    w = _const(w)
    if x.ndim == 1:
        return _matmul(x, w.T)
    moved = x.permute(*range(1, x.ndim), 0)  # (…, n)
    out = _matmul(moved, w.T)
    return out.permute(out.ndim - 1, *range(out.ndim - 1))


def stack(items, dim: int = 0, axis: int | None = None, out=None) -> Jet:
    """torch.stack / np.stack of jets and constants."""
    d = dim if axis is None else axis
    js = [as_jet(v) for v in items]
    shape = np.broadcast_shapes(*(j.shape for j in js))
    nd = len(shape) + 1
    d = d % nd
    lo = np.stack([np.broadcast_to(j.lo, shape) for j in js], d)
    hi = np.stack([np.broadcast_to(j.hi, shape) for j in js], d)
    k = _k(*js)
    if k is None:
        return Jet(lo, hi)
    ds = [_dpair(j, shape, k) for j in js]
    return Jet(lo, hi, np.stack([p[0] for p in ds], d), np.stack([p[1] for p in ds], d))


def cat(items, dim: int = 0, axis: int | None = None, out=None) -> Jet:
    """torch.cat / np.concatenate."""
    d = dim if axis is None else axis
    js = [as_jet(v) for v in items]
    d = d % js[0].ndim
    lo = np.concatenate([j.lo for j in js], d)
    hi = np.concatenate([j.hi for j in js], d)
    k = _k(*js)
    if k is None:
        return Jet(lo, hi)
    ds = [_dpair(j, j.shape, k) for j in js]
    return Jet(lo, hi, np.concatenate([p[0] for p in ds], d), np.concatenate([p[1] for p in ds], d))


# ------------------------------------------------------------------ composite activations
def relu(x) -> Jet:
    return maximum(x, 0.0)


def leaky_relu(x, negative_slope: float = 0.01) -> Jet:
    if negative_slope < 0:
        raise UnsupportedOperation("leaky_relu with a negative slope is not supported")
    return maximum(x, _mul(x, negative_slope)) if negative_slope <= 1 else minimum(
        x, _mul(x, negative_slope)
    )


def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Jet:
    """torch's softplus: log(1 + exp(βx))/β, and x itself where βx > threshold; the switch
    moves the value by at most log(1 + e^{−t})/β ≤ e^{−t}/β, which is added to the bound."""
    x = as_jet(x)
    bx = _mul(x, float(beta))
    # log(1 + e^z) = max(z, 0) + log(1 + e^{−|z|}), evaluated without overflow
    val = _add(relu(bx), unary("log", _add(unary("exp", -unary("abs", bx)), 1.0)))
    val = _mul(val, 1.0 / float(beta))
    eps = math.exp(-float(threshold)) / float(beta)
    reach = x.hi * beta > threshold
    return Jet(np.where(reach, iv.down(val.lo - eps), val.lo),
               np.where(reach, iv.up(val.hi + eps), val.hi), val.dlo, val.dhi)


def elu(x, alpha: float = 1.0) -> Jet:
    x = as_jet(x)
    neg = _mul(_add(unary("exp", minimum(x, 0.0)), -1.0), float(alpha))
    return _add(relu(x), neg)


def silu(x) -> Jet:
    return _mul(x, unary("sigmoid", x))


def gelu(x, approximate: str = "none") -> Jet:
    x = as_jet(x)
    if approximate == "tanh":
        inner = _mul(_add(x, _mul(_pow(x, 3), 0.044715)), math.sqrt(2.0 / math.pi))
        return _mul(_mul(x, 0.5), _add(unary("tanh", inner), 1.0))
    return _mul(_mul(x, 0.5), _add(unary("erf", _mul(x, 1.0 / math.sqrt(2.0))), 1.0))


# ------------------------------------------------------------------ dispatch tables
def _fn(name):
    return lambda x, *a, **k: unary(name, x)


def _binary(op):
    return lambda a, b, *rest, **kw: op(as_jet(a), b)


def _torch_clamp(x, min=None, max=None, **kw):
    return clamp(x, min, max)


def _reduce(method):
    return lambda x, *a, **k: getattr(as_jet(x), method)(*a, **k)


_ELEMENTWISE = {
    "sin": _fn("sin"),
    "cos": _fn("cos"),
    "tanh": _fn("tanh"),
    "exp": _fn("exp"),
    "log": _fn("log"),
    "sigmoid": _fn("sigmoid"),
    "abs": _fn("abs"),
    "atan": _fn("atan"),
    "arctan": _fn("atan"),
    "erf": _fn("erf"),
    "sqrt": lambda x, *a, **k: _sqrt(x),
    "square": lambda x, *a, **k: _square(x),
    "neg": lambda x, *a, **k: -as_jet(x),
    "negative": lambda x, *a, **k: -as_jet(x),
    "relu": lambda x, *a, **k: relu(x),
    "leaky_relu": lambda x, negative_slope=0.01, *a, **k: leaky_relu(x, negative_slope),
    "softplus": lambda x, beta=1.0, threshold=20.0, *a, **k: softplus(x, beta, threshold),
    "elu": lambda x, alpha=1.0, *a, **k: elu(x, alpha),
    "silu": lambda x, *a, **k: silu(x),
    "gelu": lambda x, approximate="none", *a, **k: gelu(x, approximate),
}

_TORCH = {
    **_ELEMENTWISE,
    "add": lambda a, b, *, alpha=1, **k: _add(a, _mul(as_jet(b), alpha)),
    "__add__": lambda a, b: _add(a, b),
    "__radd__": lambda a, b: _add(a, b),
    "sub": lambda a, b, *, alpha=1, **k: _add(a, -_mul(as_jet(b), alpha)),
    "__sub__": lambda a, b: _add(a, -as_jet(b)),
    "__rsub__": lambda a, b: _add(-as_jet(a), b),
    "mul": _binary(_mul),
    "multiply": _binary(_mul),
    "__mul__": lambda a, b: _mul(a, b),
    "__rmul__": lambda a, b: _mul(a, b),
    "div": lambda a, b, **k: as_jet(a) / b,
    "true_divide": lambda a, b: as_jet(a) / b,
    "__truediv__": lambda a, b: as_jet(a) / b,
    "__rtruediv__": lambda a, b: as_jet(b) / as_jet(a),
    "pow": lambda a, p: _pow(a, p),
    "__pow__": lambda a, p: _pow(a, p),
    "matmul": lambda a, b: _matmul(a, b) if isinstance(a, Jet) else _rmatmul(a, b),
    "__matmul__": lambda a, b: _matmul(a, b) if isinstance(a, Jet) else _rmatmul(a, b),
    "__rmatmul__": lambda a, b: _rmatmul(b, a),
    "__neg__": lambda a: -as_jet(a),
    "__getitem__": lambda a, idx: as_jet(a)[idx],
    "clamp": _torch_clamp,
    "clip": _torch_clamp,
    "maximum": lambda a, b: maximum(a, b),
    "minimum": lambda a, b: minimum(a, b),
    "where": where,
    "stack": stack,
    "cat": cat,
    "concat": cat,
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "reshape": lambda x, shape: as_jet(x).reshape(shape),
    "unsqueeze": lambda x, dim: as_jet(x).unsqueeze(dim),
    "squeeze": lambda x, dim=None: as_jet(x).squeeze(dim),
    "transpose": lambda x, a, b: as_jet(x).transpose(a, b),
    "t": lambda x: as_jet(x).t(),
    "zeros_like": lambda a, *x, **k: as_jet(np.zeros(as_jet(a).shape)),
    "ones_like": lambda a, *x, **k: as_jet(np.ones(as_jet(a).shape)),
    "full_like": lambda a, v, *x, **k: as_jet(np.full(as_jet(a).shape, float(v))),
}

_UFUNCS = {
    **{k: v for k, v in _ELEMENTWISE.items() if k not in ("relu", "softplus", "elu", "silu")},
    "add": lambda a, b: _add(a, b),
    "subtract": lambda a, b: _add(a, -as_jet(b)),
    "multiply": lambda a, b: _mul(a, b),
    "true_divide": lambda a, b: as_jet(a) / b,
    "divide": lambda a, b: as_jet(a) / b,
    "power": lambda a, p: _pow(a, p),
    "matmul": lambda a, b: _matmul(a, b) if isinstance(a, Jet) else _rmatmul(a, b),
    "absolute": _fn("abs"),
    "maximum": lambda a, b: maximum(a, b),
    "minimum": lambda a, b: minimum(a, b),
    "positive": lambda a: as_jet(a),
    "less": lambda a, b: as_jet(a) < b,
    "less_equal": lambda a, b: as_jet(a) <= b,
    "greater": lambda a, b: as_jet(a) > b,
    "greater_equal": lambda a, b: as_jet(a) >= b,
}

_NPFUNCS = {
    "clip": lambda a, a_min=None, a_max=None, **k: clamp(a, a_min, a_max),
    "where": where,
    "stack": stack,
    "vstack": lambda items: cat([as_jet(v).reshape(1, -1) if as_jet(v).ndim < 2 else v
                                 for v in items], 0),
    "concatenate": lambda items, axis=0: cat(items, axis),
    "sum": lambda a, axis=None, keepdims=False: as_jet(a).sum(axis=axis, keepdim=keepdims),
    "mean": lambda a, axis=None, keepdims=False: as_jet(a).mean(axis=axis, keepdim=keepdims),
    "dot": lambda a, b: _matmul(a, b) if isinstance(a, Jet) else _rmatmul(a, b),
    "reshape": lambda a, shape: as_jet(a).reshape(shape),
    "squeeze": lambda a, axis=None: as_jet(a).squeeze(axis),
    "transpose": lambda a, axes=None: as_jet(a).permute(axes or tuple(range(as_jet(a).ndim))[::-1]),
    "zeros_like": lambda a, *x, **k: as_jet(np.zeros(as_jet(a).shape)),
    "full_like": lambda a, v, *x, **k: as_jet(np.full(as_jet(a).shape, float(v))),
    "ones_like": lambda a, *x, **k: as_jet(np.ones(as_jet(a).shape)),
    "asarray": lambda a, *x, **k: as_jet(a),
    "atleast_1d": lambda a: as_jet(a) if as_jet(a).ndim else as_jet(a).reshape(1),
    "ravel": lambda a: as_jet(a).reshape(-1),
    "square": lambda a: _square(a),
}

_METHODS = {
    **_ELEMENTWISE,
    "clamp": _torch_clamp,
    "clip": _torch_clamp,
    "pow": _pow,
    "mul": _mul,
    "add": _add,
    "matmul": _matmul,
    "unbind": lambda x, dim=0: tuple(as_jet(x)[(slice(None),) * (dim % x.ndim) + (i,)]
                                     for i in range(x.shape[dim])),
}
