"""Local Lipschitz certificates: ‖f(x) − f(y)‖₂ ≤ L ‖x − y‖₂ for all x, y in a box.

A controller only ever sees its operating region X = [lo, hi] ⊂ ℝ^{d_0} (user's units). On X
every hidden neuron's pre-activation z_i stays in an interval [l_i, u_i] computed by interval
bound propagation through the exact network (:mod:`certnet.verify.interval`: outward rounded,
biases and input/output scalings included), so for x, y ∈ X its chord slope

    (σ(z_i(x)) − σ(z_i(y))) / (z_i(x) − z_i(y)) ∈ [α_i, β_i] = [min σ', max σ'] on [l_i, u_i]

(mean-value theorem; the Clarke hull at kinks). ReLU: stably active [1, 1], stably inactive
[0, 0] (σ ≡ 0 on the region: the neuron is dropped, its contribution is a constant), else
[0, 1]. The other activations use the monotonicity pieces of σ' (:func:`slope_range`),
rounded outward and intersected with the global class. LipSDP-Neuron with these per-neuron
sectors (:mod:`certnet.verify.lmi`, ``SlopeNet`` with per-neuron ``alpha``/``beta``) then
proves L on X; layers whose neurons are all linear on X (α_i = β_i = c_i) are multiplied out as
W_{k+1} diag(c) W_k, so a ReLU net that is stably active on X gets ‖W_ℓ ⋯ W_0‖₂ up to rounding.

Rounding: the slopes hold for the exact weights *with their biases*, so the bias-shift argument
of :func:`~certnet.verify.lmi.rounding_inflation` is not available; instead the difference of
the LMI matrix between the exact and the computed weights is bounded
(:func:`~certnet.verify.lmi.perturbation_margin`) and proved inside the Cholesky margin.

Refinement. For X split into boxes X_1 … X_m (bisection), a segment [x, y] ⊂ X (X is convex)
crosses the pieces in consecutive sub-segments [p_{j−1}, p_j] (each inside one closed piece),
so by the triangle inequality

    ‖f(x) − f(y)‖ ≤ Σ_j L_{X_j} ‖p_j − p_{j−1}‖ ≤ max_j L_{X_j} ‖x − y‖:

the maximum over the pieces is a Lipschitz bound on X. (This needs X convex and the pieces to
cover it; for a non-convex union the maximum is not a bound in general.) The pieces are stored
as a bisection tree of X, so the checker rebuilds a cover of X by construction.

The certificate is re-proved by ``check(net)``: it re-derives the pieces from the stored region
and splits, their slopes from the network (stored slopes are never trusted), each piece's LMI
from the stored multipliers, and re-evaluates the stored lower-bound witness pair.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from certnet.errors import CertificateError
from certnet.verify import interval as iv
from certnet.verify.certificate import Certificate, register_checker
from certnet.verify.fast import feasible_start, optimize_multipliers
from certnet.verify.lmi import certified_value, certify_rho, slope_net
from certnet.verify.product import check_derived

__all__ = ["as_box", "region_bounds", "region_slopes", "slope_range", "local_lipschitz"]

METHODS = ("fast", "lipsdp-neuron")

_R = 1e-12  # relative margin on a chain of library evaluations (≥ 4000 ulps)
_A = 1e-300  # absolute margin (underflow)


def _dn(v):
    v = np.asarray(v, dtype=np.float64)
    return v - np.abs(v) * _R - _A


def _upv(v):
    v = np.asarray(v, dtype=np.float64)
    return v + np.abs(v) * _R + _A


# ------------------------------------------------------------------ the region
def as_box(region, d0: int) -> tuple[np.ndarray, np.ndarray]:
    """The box [lo, hi] ⊂ ℝ^{d_0} of a region, validated.

    Parameters
    ----------
    region : tuple, list or dict
        ``(lo, hi)`` (two arrays of shape (d_0,)); ``{"lo": lo, "hi": hi}``; or
        ``{"centre": c, "half_widths": r}`` (``"center"`` and ``"radius"`` are accepted too;
        r a scalar or an array, r ≥ 0), enclosed as [c − r, c + r] rounded outward. All in the
        user's input units (before the network's input scaling).
    d0 : int
        The network's input dimension.

    Raises
    ------
    ValueError
        Not one of these forms, a wrong shape, NaN or ±inf, lo > hi, or r < 0; the message says
        which entry.
    """
    how = "give region=(lo, hi) or {'centre': c, 'half_widths': r} in the user's input units"
    if isinstance(region, dict):
        keys = set(region)
        centre = region.get("centre", region.get("center"))
        half = region.get("half_widths", region.get("radius"))
        if {"lo", "hi"} <= keys:
            lo, hi = region["lo"], region["hi"]
        elif centre is not None and half is not None:
            c = _vector(centre, d0, "centre", how)
            r = np.broadcast_to(np.asarray(half, dtype=np.float64), (d0,)).copy()
            _finite(r, "half_widths", how)
            if np.any(r < 0):
                raise ValueError(f"region half_widths must be >= 0, got {r.tolist()}; {how}")
            lo, hi = iv.down(c - r), iv.up(c + r)
            _finite(lo, "lo = centre - half_widths", how)
            _finite(hi, "hi = centre + half_widths", how)
            return lo, hi
        else:
            raise ValueError(f"region dict has keys {sorted(keys)}; {how}")
    elif isinstance(region, (tuple, list)) and len(region) == 2:
        lo, hi = region
    else:
        raise ValueError(
            f"region must be a pair (lo, hi) or a dict, got {type(region).__name__}; {how}"
        )
    lo, hi = _vector(lo, d0, "lo", how), _vector(hi, d0, "hi", how)
    bad = np.flatnonzero(lo > hi)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"region is empty: lo[{i}] = {float(lo[i])!r} > hi[{i}] = {float(hi[i])!r}; {how} "
            "with lo <= hi"
        )
    return lo, hi


def _vector(v, d0, name, how):
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"region {name} is not numeric: {v!r}; {how}") from None
    if a.ndim == 0:
        a = np.full(d0, float(a))
    if a.shape != (d0,):
        raise ValueError(
            f"region {name} has shape {a.shape}, but the network has {d0} inputs; {how}"
        )
    _finite(a, name, how)
    return a.copy()


def _finite(a, name, how):
    if not np.isfinite(a).all():
        i = int(np.flatnonzero(~np.isfinite(a))[0])
        raise ValueError(f"region {name}[{i}] = {float(a[i])!r} is not finite; {how}")


# ------------------------------------------------------------------ activations on intervals
_MINIMA = {  # (x* bracket, lower bound on min σ): σ decreasing left of x*, increasing right
    "silu": ((-1.2795, -1.2775), -0.2784645437),
    "gelu": ((-0.7528, -0.7508), -0.1699712085),
    "gelu_tanh": ((-0.7535, -0.7515), -0.1700407516),
}
_K = math.sqrt(2.0 / math.pi)


def _point(name: str, kw: dict):
    """σ as a float64 numpy function (for ranges; evaluated with the margins _dn/_upv)."""
    from scipy.special import expit, ndtr

    if name == "identity":
        return lambda x: x
    if name == "relu":
        return lambda x: np.maximum(x, 0.0)
    if name == "leaky_relu":
        a = float(kw.get("negative_slope", 0.01))
        return lambda x: np.where(x >= 0, x, a * x)
    if name == "tanh":
        return np.tanh
    if name == "sigmoid":
        return expit
    if name == "softplus":
        b = float(kw.get("beta", 1.0))
        return lambda x: np.maximum(x, 0.0) + np.log1p(np.exp(-b * np.abs(x))) / b
    if name == "elu":
        a = float(kw.get("alpha", 1.0))
        return lambda x: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0)))
    if name == "silu":
        return lambda x: np.nan_to_num(x * expit(x), nan=0.0)
    if name == "gelu":
        return lambda x: np.nan_to_num(x * ndtr(x), nan=0.0)
    if name == "gelu_tanh":
        return lambda x: np.nan_to_num(
            0.5 * x * (1.0 + np.tanh(_K * (x + 0.044715 * x**3))), nan=0.0
        )
    raise ValueError(f"no local rule for activation {name!r}")


def value_range(spec, z) -> tuple[np.ndarray, np.ndarray]:
    """An outward-rounded enclosure of σ([l, u]) for each neuron (z = (l, u))."""
    lo, hi = z
    name = spec.name
    if name == "identity":
        return lo, hi
    if name == "relu":
        return np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    if name in ("tanh", "sigmoid"):
        return iv.FUNCTIONS[name](z)
    f = _point(name, spec.kwargs)
    with np.errstate(over="ignore", invalid="ignore"):
        flo, fhi = f(lo), f(hi)
    if name in _MINIMA:
        (x_lo, x_hi), fmin = _MINIMA[name]
        dec, inc = hi <= x_lo, lo >= x_hi
        rlo = np.where(dec, fhi, np.where(inc, flo, fmin))
        rhi = np.where(dec, flo, np.where(inc, fhi, np.maximum(flo, fhi)))
        return iv._clean(np.where(dec | inc, _dn(rlo), fmin), _upv(rhi))
    out_lo, out_hi = _dn(flo), _upv(fhi)  # monotone increasing (leaky_relu, softplus, elu)
    if name == "softplus":
        out_lo = np.maximum(out_lo, 0.0)
    return iv._clean(out_lo, out_hi)


def _dsilu(x):
    from scipy.special import expit

    s, sm = expit(x), expit(-x)
    d = s + x * s * sm
    return np.where(np.isposinf(x), 1.0, np.where(np.isneginf(x), 0.0, d))


def _dgelu(x):
    from scipy.special import ndtr

    d = ndtr(x) + x * np.exp(-0.5 * np.minimum(x * x, 1e300)) / math.sqrt(2 * math.pi)
    return np.where(np.isposinf(x), 1.0, np.where(np.isneginf(x), 0.0, d))


_DERIV_PEAKS = {  # σ' decreasing on (−∞, −c], increasing on [−c, c], decreasing on [c, ∞)
    "silu": (_dsilu, (2.3993, 2.3994)),
    "gelu": (_dgelu, (math.sqrt(2) - 1e-9, math.sqrt(2) + 1e-9)),
}


def slope_range(spec, z) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron slope classes [α_i, β_i] ⊇ {σ'(ξ) : ξ ∈ [l_i, u_i]} (Clarke hull at kinks),
    so every chord slope of σ on [l_i, u_i] lies in it; intersected with the global class.

    Exact (no rounding) for the piecewise-linear activations: ReLU [1, 1] if l ≥ 0, [0, 0]
    if u ≤ 0 (σ ≡ 0 there), else [0, 1]; leaky ReLU likewise with [a, a]; ELU with α = 0 as
    ReLU. tanh, sigmoid: σ' is monotone in |x| (:data:`~certnet.verify.interval.DERIVATIVES`).
    softplus: σ' = sigmoid(βx) is increasing. ELU: σ' = α eˣ (x < 0, increasing) and 1 (x > 0).
    SiLU, GELU: σ' has one minimum (−c) and one maximum (c) (SiLU c ≈ 2.39936, GELU c = √2), so
    its range is spanned by the endpoints and the extremes whose bracket meets [l, u].
    gelu_tanh: the global class. Library evaluations get a relative margin of 1e-12 plus 1e-300.
    """
    lo, hi = z
    name, ga, gb = spec.name, float(spec.alpha), float(spec.beta)
    ones, zeros = np.ones_like(lo), np.zeros_like(lo)
    if name == "elu" and float(spec.kwargs.get("alpha", 1.0)) == 0.0:
        name = "relu"
    if name == "identity":
        return ones, ones
    if name in ("relu", "leaky_relu"):
        a = float(spec.kwargs.get("negative_slope", 0.01)) if name == "leaky_relu" else 0.0
        neg = np.where(hi <= 0, a, np.where(lo >= 0, 1.0, min(a, 1.0)))
        pos = np.where(hi <= 0, a, np.where(lo >= 0, 1.0, max(a, 1.0)))
        return neg.astype(np.float64), pos.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if name in ("tanh", "sigmoid"):
            a, b = iv.DERIVATIVES[name](z)
        elif name == "softplus":
            from scipy.special import expit

            be = float(spec.kwargs.get("beta", 1.0))
            a, b = _dn(expit(iv.down(be * lo))), _upv(expit(iv.up(be * hi)))
        elif name == "elu":
            al = float(spec.kwargs.get("alpha", 1.0))
            neg_lo = _dn(al * np.exp(lo))
            neg_hi = _upv(al * np.exp(np.minimum(hi, 0.0)))
            a = np.where(lo >= 0, 1.0, np.where(hi > 0, np.minimum(neg_lo, 1.0), neg_lo))
            b = np.where(lo >= 0, 1.0, np.where(hi > 0, np.maximum(neg_hi, 1.0), neg_hi))
        elif name in _DERIV_PEAKS:
            d, (c_lo, c_hi) = _DERIV_PEAKS[name]
            dl, dh = d(lo), d(hi)
            has_min = (lo <= -c_lo) & (hi >= -c_hi)
            has_max = (lo <= c_hi) & (hi >= c_lo)
            a = np.where(has_min, ga, _dn(np.minimum(dl, dh)) - 1e-14)
            b = np.where(has_max, gb, _upv(np.maximum(dl, dh)) + 1e-14)
        else:
            a, b = ga * ones, gb * ones
    a = np.where(np.isfinite(a), a, ga)
    b = np.where(np.isfinite(b), b, gb)
    a, b = np.maximum(a, ga), np.minimum(b, gb)  # both classes hold: so does their meet
    return a + zeros, np.maximum(a, b) + zeros


def region_bounds(stack, lo, hi):
    """Pre-activation intervals (l, u) of every hidden layer on the box [lo, hi] and the
    neurons' slope classes: ``[((l, u), (α, β)), …]``, one pair per hidden layer.

    Interval bound propagation with outward rounding: x ∈ [lo, hi] ↦ (x − c_in) s_in ↦
    W_1 · + b_1 ↦ σ_1 ↦ …. A neuron with α = β = 0 is identically 0 on the region, and its
    output interval is then exactly [0, 0].

    Raises
    ------
    ValueError
        An activation that is not elementwise (GroupSort).
    """
    for k, a in enumerate(stack.activations):
        if not a.elementwise:
            raise ValueError(
                f"local certificates need elementwise activations, but hidden layer {k + 1} is "
                f"{a.name!r}; use the global lipschitz(net, method='product')"
            )
    c, s = stack.input_offset, stack.input_scale
    h = iv.mul(iv.sub((lo, hi), (c, c)), (s, s))
    out = []
    for k, spec in enumerate(stack.activations):
        b = stack.biases[k]
        z = iv.add(iv.matmul_const(h, stack.weights[k]), (b, b))
        a, be = slope_range(spec, z)
        dead = (a == 0.0) & (be == 0.0)
        h = value_range(spec, z)
        h = (np.where(dead, 0.0, h[0]), np.where(dead, 0.0, h[1]))
        out.append((z, (a, be)))
    return out


def region_slopes(stack, lo, hi) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hidden layer (α, β) arrays of the neurons' slope classes on [lo, hi] (see
    :func:`region_bounds`), the ``slopes`` argument of :func:`~certnet.verify.lmi.slope_net`."""
    return [ab for _, ab in region_bounds(stack, lo, hi)]


# ------------------------------------------------------------------ one piece
def _multipliers(net, method: str, max_iter: int, solver: str | None):
    """Multipliers (user's units) for a local SlopeNet, and a status string."""
    nn_, s = net.normalized()
    p2 = [1.0]
    for sk in s:
        p2.append(p2[-1] * sk * sk)
    if not nn_.hidden:
        return [], "no hidden layer left (linear on the region)"
    if method == "fast":
        th, info = optimize_multipliers(nn_, max_iter=max_iter)
        status = info["status"]
    else:
        import cvxpy as cp

        from certnet.verify.lipsdp import _scaled_problem

        prob, tvars, _ = _scaled_problem(nn_, "neuron", 1e-7)
        try:
            prob.solve(solver=solver or "CVXOPT")
            status = str(prob.status)
        except cp.error.SolverError as e:
            status = f"solver_error {e}"
        if status == cp.OPTIMAL:
            th = [np.maximum(np.asarray(t.value, dtype=np.float64), 0.0) for t in tvars]
        else:
            th, status = feasible_start(nn_), f"{status}: closed-form feasible multipliers"
    return [t * (p2[-1] / p2[k + 1]) for k, t in enumerate(th)], status


def _local_net(stack, lo, hi, method, min_width):
    return slope_net(stack, method, slopes=region_slopes(stack, lo, hi), min_width=min_width)


def _prove_piece(stack, lo, hi, method, max_iter, solver, min_widths):
    """(value, flat t, κ, status) of one box, the best over the candidate widths κ; value inf
    if nothing is proved."""
    best = None
    for kappa in min_widths:
        v, t, status = _prove_piece_at(stack, lo, hi, method, max_iter, solver, kappa)
        if best is None or v < best[0]:
            best = (v, t, kappa, f"κ={kappa:g}: {status}")
    return best


def _prove_piece_at(stack, lo, hi, method, max_iter, solver, min_width):
    net = _local_net(stack, lo, hi, f"{method}-local", min_width)
    ts, status = _multipliers(net, method, max_iter, solver)
    for attempt in ("optimised", "feasible start"):
        flat = np.concatenate([np.ravel(t) for t in ts]) if ts else np.zeros(0)
        try:
            return certified_value(net, certify_rho(net, flat)), flat, status
        except CertificateError as e:
            if attempt == "feasible start":
                return math.inf, flat, f"{status}; proved nothing: {e}"
            nn_, s = net.normalized()
            p2 = [1.0]
            for sk in s:
                p2.append(p2[-1] * sk * sk)
            ts = [t * (p2[-1] / p2[k + 1]) for k, t in enumerate(feasible_start(nn_))]
            status = f"{status}; multipliers proved nothing ({e}), closed-form start used"
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ the bisection tree
def _leaves(lo, hi, splits):
    """Boxes of the leaves of a preorder bisection tree (entries ``None`` = leaf, or
    ``[dim, at]``: children [lo, hi with hi_dim = at] and [lo with lo_dim = at, hi])."""
    out, pos = [], 0

    def walk(lo, hi):
        nonlocal pos
        if pos >= len(splits):
            raise CertificateError("the bisection tree ('splits') ends early; re-certify")
        node = splits[pos]
        pos += 1
        if node is None:
            out.append((lo, hi))
            return
        dim, at = int(node[0]), float(node[1])
        if node[0] != dim or not (0 <= dim < lo.size) or not (lo[dim] <= at <= hi[dim]):
            raise CertificateError(
                f"the split {node!r} does not cut the box [{lo[dim % lo.size]!r}, "
                f"{hi[dim % lo.size]!r}] in a valid dimension; the certificate was tampered "
                "with: re-certify"
            )
        h1, l2 = hi.copy(), lo.copy()
        h1[dim], l2[dim] = at, at
        walk(lo, h1)
        walk(l2, hi)

    walk(lo, hi)
    if pos != len(splits):
        raise CertificateError("the bisection tree ('splits') has extra entries; re-certify")
    return out


def _tree(node):
    """Preorder list of a tree built by :func:`local_lipschitz`."""
    if node["split"] is None:
        return [None]
    return [list(node["split"]), *_tree(node["kids"][0]), *_tree(node["kids"][1])]


def _forward_pair(stack, x, y) -> float:
    fx, fy = stack.forward(x), stack.forward(y)
    den = float(np.linalg.norm(x - y))
    return float(np.linalg.norm(fx - fy)) / den if den > 0 else 0.0


def _derived(stack, lo, hi, splits, flat_t, method, min_widths):
    """What the checker re-derives: per-piece values and data, the whole-region slopes."""
    pieces, values, pos = [], [], 0
    leaves = _leaves(lo, hi, splits)
    if len(min_widths) != len(leaves):
        raise CertificateError(
            f"data['min_width'] has {len(min_widths)} entries for {len(leaves)} pieces; it was "
            "tampered with: re-certify"
        )
    for (plo, phi), kappa in zip(leaves, min_widths, strict=True):
        net = _local_net(stack, plo, phi, method, kappa)
        n = sum(net.hidden)
        if pos + n > flat_t.size:
            raise CertificateError(
                "the certificate has fewer multipliers than its pieces' neurons; it was "
                "tampered with or made for another network: re-certify"
            )
        t = flat_t[pos : pos + n]
        pos += n
        v = certified_value(net, certify_rho(net, t))
        values.append(v)
        pieces.append({"widths": net.widths, "value": v, "rounding": list(net.errs)})
    if pos != flat_t.size:
        raise CertificateError(
            "the certificate has more multipliers than its pieces' neurons; it was tampered "
            "with or made for another network: re-certify"
        )
    slopes = region_slopes(stack, lo, hi)
    al = np.concatenate([a for a, _ in slopes]) if slopes else np.zeros(0)
    be = np.concatenate([b for _, b in slopes]) if slopes else np.zeros(0)
    neurons = {
        "total": int(al.size),
        "dead": int(np.count_nonzero((al == 0) & (be == 0))),
        "linear": int(np.count_nonzero((al == be) & (al != 0))),
    }
    return {
        "pieces": pieces,
        "local_value": max(values),
        "slopes": {
            "alpha": [a.tolist() for a, _ in slopes],
            "beta": [b.tolist() for _, b in slopes],
        },
        "neurons": neurons,
    }


# ------------------------------------------------------------------ the certificate
def local_lipschitz(
    stack,
    region,
    method: str = "fast",
    *,
    global_cert: Certificate | None = None,
    gap: float | None = None,
    max_splits: int = 64,
    max_iter: int = 300,
    solver: str | None = None,
    lower_samples: int = 2000,
    progress: bool = False,
    min_width: float | tuple[float, ...] = (1e-3, 3e-2),
) -> Certificate:
    """Certified ℓ2 Lipschitz bound of ``stack`` on a box (see the module docstring).

    Called by :func:`certnet.verify.lipschitz` with ``region=``; ``global_cert`` is the
    global certificate of the same net: when the local bound is not smaller, it is embedded
    (``data["global"]``, re-checked by ``check``) and its value is the certificate's — a
    global bound holds on every region — and ``solver["outcome"]`` says so.

    ``gap``: bisect the piece of largest bound along its widest input (in the network's
    scaled units) until max_j L_j ≤ (1 + gap)·lower or ``max_splits`` splits are used.

    ``min_width`` κ (a float, or candidates of which each piece keeps the best): in a layer
    that is not linear on the piece, a neuron class narrower than κ(β_g − α_g) is widened to
    that width (within the global class; see :func:`~certnet.verify.lmi.slope_net`). A sector
    [c, c] (a stably active ReLU) has no finite optimal LipSDP multiplier, and narrow sectors
    are ill-conditioned for both solvers. Measured: on a 3-12-12-2 ReLU net with one such
    neuron "fast" proved 0.552 with κ = 0 and 0.323 with κ = 10⁻³ (global 0.328); on a scaled
    2-32-32-1 tanh NormalizedMLP box of half-width 0.01, 0.193 (κ = 10⁻³, max_iter reached),
    0.135 (κ = 0.03; lower bound 0.129). The κ of each piece is stored in
    ``data["min_width"]`` (an input of the proof: the checker uses it).
    """
    if method not in METHODS:
        raise ValueError(
            f"a local certificate is proved by LipSDP-Neuron with per-neuron slopes: method "
            f"must be one of {METHODS} (or 'auto'), got {method!r}"
        )
    if gap is not None and not (gap > 0 and math.isfinite(gap)):
        raise ValueError(f"gap must be a finite number > 0 (e.g. 0.1), got {gap!r}")
    widths = tuple(np.atleast_1d(np.asarray(min_width, dtype=np.float64)).tolist())
    if not widths or not all(0.0 <= k <= 1.0 for k in widths):
        raise ValueError(f"min_width must be in [0, 1] (default (1e-3, 0.03)), got {min_width!r}")
    if int(max_splits) != max_splits or max_splits < 0:
        raise ValueError(f"max_splits must be an integer >= 0, got {max_splits!r}")
    t0 = time.perf_counter()
    lo, hi = as_box(region, stack.widths[0])
    region_bounds(stack, lo, hi)  # refuses GroupSort with its message
    from certnet.verify.lower import lipschitz_lower_bound

    low = lipschitz_lower_bound(stack, region=(lo, hi), samples=lower_samples)
    x, y = np.asarray(low["pair"][0]), np.asarray(low["pair"][1])
    q = _forward_pair(stack, x, y)
    name = f"{method}-local"

    def piece(plo, phi):
        v, t, kappa, status = _prove_piece(stack, plo, phi, method, max_iter, solver, widths)
        return {
            "lo": plo,
            "hi": phi,
            "value": v,
            "t": t,
            "kappa": kappa,
            "status": status,
            "split": None,
        }

    root = piece(lo, hi)
    leaves = [root]
    splits_used = 0
    scale = np.where(stack.input_scale != 0, np.abs(stack.input_scale), 1.0)
    bar = _Progress(progress, max_splits if gap is not None else 0, name)
    with bar:
        while gap is not None and splits_used < max_splits:
            worst = max(leaves, key=lambda p: p["value"])
            if worst["value"] <= (1.0 + gap) * q:
                break
            width = (worst["hi"] - worst["lo"]) * scale
            dim = int(np.argmax(width))
            if not width[dim] > 0:
                break
            at = float(0.5 * worst["lo"][dim] + 0.5 * worst["hi"][dim])
            h1, l2 = worst["hi"].copy(), worst["lo"].copy()
            h1[dim], l2[dim] = at, at
            kids = [piece(worst["lo"], h1), piece(l2, worst["hi"])]
            worst.update(split=(dim, at), kids=kids)
            leaves = [p for p in leaves if p is not worst] + kids
            splits_used += 1
            bar.step(max(p["value"] for p in leaves) / q if q > 0 else math.inf)
    splits = _tree(root)
    ordered = _leaves(lo, hi, splits)
    by_box = {(p["lo"].tobytes(), p["hi"].tobytes()): p for p in leaves}
    order = [by_box[(a.tobytes(), b.tobytes())] for a, b in ordered]
    flat = np.concatenate([p["t"] for p in order]) if order else np.zeros(0)
    local_value = max(p["value"] for p in order)
    data = {
        "region": {"lo": lo.tolist(), "hi": hi.tolist()},
        "splits": splits,
        "min_width": [p["kappa"] for p in order],
        "lower": {"x": x.tolist(), "y": y.tolist(), "value": q},
    }
    data.update(_derived(stack, lo, hi, splits, flat, name, data["min_width"]))
    value = data["local_value"]
    outcome = "local"
    if global_cert is not None and global_cert.value < local_value:
        data["global"] = global_cert.to_dict()
        value = global_cert.value
        outcome = (
            f"global: the local bound {local_value!r} is not smaller than the global "
            f"{global_cert.value!r}, which holds on every region"
        )
    data["interval"] = [q, value]
    info = {
        "name": f"certnet.verify.local ({method}, per-neuron slopes by interval propagation)",
        "outcome": outcome,
        "global": (
            {"method": global_cert.method, "value": global_cert.value} if global_cert else None
        ),
        "splits": splits_used,
        "gap": gap,
        "pieces": [p["status"] for p in order],
        "lower_bound": {k: low[k] for k in ("sampled", "ascent")},
        "time": time.perf_counter() - t0,
    }
    del local_value
    return Certificate(
        kind="lipschitz",
        value=value,
        method=name,
        certified=True,
        norm="l2",
        multipliers={"t": flat},
        data=data,
        solver=info,
        fingerprint=stack.fingerprint(),
    )


class _Progress:
    """A rich progress bar over the split budget (only when asked for and rich is there)."""

    def __init__(self, on: bool, total: int, name: str):
        self.bar = None
        if on and total:
            try:
                from rich.progress import Progress

                self.bar = Progress(transient=True)
                self.task = self.bar.add_task(f"{name}: refining", total=total)
            except ImportError:  # rich is optional
                self.bar = None

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def step(self, ratio: float):
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"upper/lower {ratio:.3f}")


def _box_of(cert):
    reg = cert.data.get("region")
    if not isinstance(reg, dict) or set(reg) != {"lo", "hi"}:
        raise CertificateError(
            "the certificate's data['region'] must be {'lo': [...], 'hi': [...]}; it is "
            "malformed or was tampered with: re-certify"
        )
    return reg


def _check_local(cert: Certificate, stack, **context) -> float:
    if stack is None:
        raise CertificateError(
            f"a {cert.method!r} certificate is re-verified against the weights: call "
            "cert.check(net) with the network it was made for"
        )
    reg = _box_of(cert)
    try:
        lo, hi = as_box((reg["lo"], reg["hi"]), stack.widths[0])
    except ValueError as e:
        raise CertificateError(f"the stored region is invalid ({e}); re-certify") from None
    splits = cert.data.get("splits")
    if not isinstance(splits, list):
        raise CertificateError("the certificate has no bisection tree ('splits'); re-certify")
    kappa = cert.data.get("min_width")
    ok = isinstance(kappa, list) and all(
        isinstance(k, (int, float)) and not isinstance(k, bool) and 0.0 <= k <= 1.0 for k in kappa
    )
    if not ok:
        raise CertificateError(
            f"data['min_width'] = {kappa!r} is not a list of widths in [0, 1] (one per piece); "
            "it was tampered with: re-certify"
        )
    derived = _derived(stack, lo, hi, splits, cert.array("t").ravel(), cert.method, kappa)
    value = derived["local_value"]
    if "global" in cert.data:
        g = Certificate.from_dict(cert.data["global"])
        if g.kind != "lipschitz" or g.method.endswith("-local"):
            raise CertificateError(
                "the embedded global certificate is not a global Lipschitz certificate; it was "
                "tampered with: re-certify"
            )
        value = min(value, g.check(stack))
    low = cert.data.get("lower")
    if low is not None:
        x, y = np.asarray(low["x"], dtype=np.float64), np.asarray(low["y"], dtype=np.float64)
        if x.shape != lo.shape or y.shape != lo.shape:
            raise CertificateError("the lower-bound witness has the wrong shape; re-certify")
        inside = np.all((lo <= x) & (x <= hi) & (lo <= y) & (y <= hi))
        q = _forward_pair(stack, x, y)
        if not inside or not float(low["value"]) <= q * (1 + 1e-9):
            raise CertificateError(
                f"the stored lower bound {low['value']!r} is not attained by its witness pair "
                f"inside the region (it gives {q!r}); it was tampered with: re-certify"
            )
        interval = cert.data.get("interval")
        if interval is not None and json.dumps(interval) != json.dumps([low["value"], cert.value]):
            raise CertificateError(
                f"data['interval'] = {interval!r} is not [lower, value] = "
                f"{[low['value'], cert.value]!r}; it was tampered with: re-certify"
            )
    elif "interval" in cert.data:
        raise CertificateError("data['interval'] without its lower-bound witness; re-certify")
    check_derived(cert, derived)
    return value


for _m in METHODS:
    register_checker("lipschitz", f"{_m}-local", norm="l2")(_check_local)
