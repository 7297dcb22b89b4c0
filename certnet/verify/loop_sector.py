"""Quadratic-constraint (sector) certificates of a plant in feedback with a network.

The loop, in deviations δx = x − x* from a closed-loop equilibrium x*, is

    δx⁺ = A δx + B δs + E ψ(C_ψ δx) + B_d d,      δs = sat(u* + δu) − sat(u*),
    δu  = W_L δw_{L−1},  δw_k = σ(v_k* + δv_k) − σ(v_k*),  δv_k = W_k δw_{k−1},  δw_0 = δx,

with folded weights (scalings included). Every scalar nonlinearity (each hidden neuron, each
saturated input, each plant nonlinearity ψ) is covered by a **sector**: its output p and input q
satisfy (p − α q)(β q − p) ≥ 0. Local sectors come from interval bounds over a region: the box
|δv_1| ≤ Δv around the equilibrium pre-activations (Yin, Seiler & Arcak, IEEE TAC 2022),
optionally intersected with an input box or parallelotope in δx (:func:`input_box`,
:func:`_frame`), propagated by intervals, by zonotopes over the input region and, at the
output, by the network's product Lipschitz bound, whichever is tightest (:func:`_propagate`).
The ellipsoid {δxᵀPδx ≤ 1} is kept inside that region (and inside |C_ψ δx| ≤ r̄) by the
containment LMIs [[b_i², w_iᵀ], [w_i, P]] ⪰ 0, so the sectors hold wherever the ellipsoid does.

Sector of a neuron over δ ∈ [lo, hi] (an interval containing 0): the secant
s(δ) = (σ(c + δ) − σ(c)) / δ. For an S-shaped σ (tanh, sigmoid, saturation; σ' unimodal) s is
quasi-concave, so its minimum is at an endpoint and its supremum is at most sup σ'; for a
convex σ (relu, softplus, leaky_relu with slope ≤ 1, elu with α ≤ 1) s is nondecreasing.
Endpoint secants are evaluated in float64 and rounded outward by their round-off bound.

Stability (kind "stability"): the S-procedure LMI

    X₊ᵀ P X₊ − ρ² E_xᵀ P E_x + Σ_j λ_j S_j ⪯ 0,     λ ≥ 0,

over z = [δx, δw, δs, ψ] gives V(δx⁺) ≤ ρ² V(δx) inside the ellipsoid; with ρ < 1 the ellipsoid
is invariant and every trajectory from it converges to x*: it is an inner estimate of the region
of attraction (ROA). The certified value is ρ, the contraction factor of ‖δx‖_P per step.

ℓ2 gain (kind "l2-gain"): with z = [δx, δw, δs, ψ, d] and y = C_y δx,

    X₊ᵀ P X₊ − E_xᵀ P E_x + Σ_j λ_j S_j − c E_dᵀE_d + h E_yᵀE_y ⪯ 0

proves Σ|y|² ≤ γ² Σ|d|² with γ = √(c/h) from x₀ = x* (divide the dissipation inequality
V⁺ − V ≤ γ²|d|² − |y|² by γ²/c). Locally (energy e given, c = 1/e) the
containment LMIs keep {δxᵀPδx ≤ 1} inside the sector region and the claim holds for every d
with Σ|d|² ≤ e; globally (c = 1, global sectors, no containment) it holds for every d.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from certnet.errors import CertificateError
from certnet.nn.activations import ActivationSpec
from certnet.verify.product import spectral_norms

__all__ = [
    "LoopModel",
    "PSI_FUNCTIONS",
    "sector_bounds",
    "input_box",
    "solve_stability",
    "verify_stability",
    "solve_l2",
    "verify_l2",
]

# Relative tolerances in one place.
_TINY = 1e-6  # half-width below which an interval is widened before taking secants
_CONTAIN = 1e-9  # relative slack required in the containment test of a check
_SOLVE_MARGIN = 1e-6  # the SDP asks for this much more than the check needs
_MAX_Z = 600  # size check: the LMI is (n + neurons + m + p + q)² — refuse beyond this

_S_SHAPED = {"tanh", "sigmoid"}


def _psi_sin(s: np.ndarray) -> np.ndarray:
    return s - np.sin(s)


def _psi_sin_sector(rbar: float | None) -> tuple[float, float]:
    # (s − sin s)/s = 1 − sinc(s) ≥ 0 everywhere; ≤ 1 − sin r̄ / r̄ on |s| ≤ r̄ ≤ 4.4934 (sinc
    # decreases on [0, x₁], x₁ = 4.49340945790906 the first root of tan x = x); globally
    # ≤ 1 + 0.21723362821122166 (sinc's minimum, at x₁).
    if rbar is None or rbar > 4.4934:
        return 0.0, 1.2172336282112217 + 1e-12
    return 0.0, 1.0 - math.sin(rbar) / rbar + 1e-12


#: Plant nonlinearities with known sectors: name → (ψ, sector(r̄) on |s| ≤ r̄, None = global).
PSI_FUNCTIONS = {"s - sin(s)": (_psi_sin, _psi_sin_sector)}


@dataclass(frozen=True)
class LoopModel:
    """A plant in the form the sector analysis reads (deviation coordinates).

    Attributes
    ----------
    A, B : ndarray
        (n, n) and (n, m): δx⁺ = A δx + B δs + E ψ(C_ψ δx).
    E, C_psi : ndarray
        (n, p) and (p, n); p = 0 when the model is exactly linear.
    psi : str
        Name in :data:`PSI_FUNCTIONS` ("" when p = 0).
    x_eq : ndarray
        The closed-loop equilibrium x* (n,).
    u_lo, u_hi : ndarray or None
        Actuator limits (m,), or None for no saturation.
    linearised : bool
        True when (A, B) is a linearisation and the nonlinear remainder is *not* accounted for;
        certificates then carry "linearization" in their method name.
    """

    A: np.ndarray
    B: np.ndarray
    E: np.ndarray
    C_psi: np.ndarray
    psi: str
    x_eq: np.ndarray
    u_lo: np.ndarray | None
    u_hi: np.ndarray | None
    linearised: bool

    def to_data(self) -> dict:
        return {
            "A": self.A,
            "B": self.B,
            "E": self.E,
            "C_psi": self.C_psi,
            "psi": self.psi,
            "x_eq": self.x_eq,
            "u_lo": self.u_lo,
            "u_hi": self.u_hi,
            "linearised": self.linearised,
        }

    @classmethod
    def from_data(cls, d: dict) -> LoopModel:
        def arr(k, n=None):
            return None if d[k] is None else np.asarray(d[k], dtype=np.float64).reshape(n or -1)

        n = len(d["x_eq"])
        A = np.asarray(d["A"], dtype=np.float64).reshape(n, n)
        B = np.asarray(d["B"], dtype=np.float64).reshape(n, -1)
        E = np.asarray(d["E"], dtype=np.float64).reshape(n, -1)
        C = np.asarray(d["C_psi"], dtype=np.float64).reshape(E.shape[1], n)
        return cls(A, B, E, C, d["psi"], arr("x_eq"), arr("u_lo"), arr("u_hi"), d["linearised"])


# ------------------------------------------------------------------ network arrays
def _net_data(weights, biases, acts) -> dict:
    return {
        "weights": [np.asarray(w) for w in weights],
        "biases": [np.asarray(b) for b in biases],
        "activations": [[a.name, dict(a.kwargs)] for a in acts],
    }


def _act_kind(spec: ActivationSpec) -> str:
    name = spec.name
    if name == "identity":
        return "linear"
    if name in _S_SHAPED:
        return "s"
    if name in ("relu", "softplus"):
        return "convex"
    if name == "leaky_relu":
        return "convex" if float(spec.kwargs.get("negative_slope", 0.01)) <= 1 else "concave"
    if name == "elu" and float(spec.kwargs.get("alpha", 1.0)) <= 1:
        return "convex"
    raise TypeError(
        f"the sector method has no local sector rule for activation {name!r} "
        f"{spec.kwargs or ''}; it supports identity, tanh, sigmoid, relu, softplus, "
        "leaky_relu and elu(alpha<=1). Use method='small-gain' for this network"
    )


def _phi(spec: ActivationSpec, v: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return spec.module().double()(torch.from_numpy(np.ascontiguousarray(v))).numpy()


def _secant_sector(f, c, lo, hi, kind, beta_global):
    """Sector [α, β] of δ ↦ f(c + δ) − f(c) over δ ∈ [lo, hi] ∋ 0, rounded outward."""
    lo = np.minimum(lo, -_TINY)
    hi = np.maximum(hi, _TINY)
    fc = f(c)
    s_lo = (f(c + lo) - fc) / lo
    s_hi = (f(c + hi) - fc) / hi
    # round-off of a secant: a few ulps of |f| over |δ| (f values are O(1) or O(|c|+|δ|))
    scale = 1.0 + np.abs(fc) + np.abs(c) + np.maximum(-lo, hi)
    pad_lo = 8e-16 * scale / (-lo) + 1e-12
    pad_hi = 8e-16 * scale / hi + 1e-12
    if kind == "convex":
        return s_lo - pad_lo, s_hi + pad_hi
    if kind == "concave":
        return s_hi - pad_hi, s_lo + pad_lo
    alpha = np.minimum(s_lo - pad_lo, s_hi - pad_hi)
    return np.maximum(alpha, 0.0), np.full_like(alpha, beta_global)


def _clip(u_lo, u_hi):
    return lambda v: np.clip(v, u_lo, u_hi)


def equilibrium(model: LoopModel, net: dict) -> dict:
    """Pre-activations at x* and the control there; raises if x* is no equilibrium."""
    ws, bs = net["weights"], net["biases"]
    h = model.x_eq
    vs = []
    for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
        v = w @ h + b
        if k < len(ws) - 1:
            vs.append(v)
            h = _phi(_spec(net, k), v)
        else:
            u = v
    s = u if model.u_lo is None else np.clip(u, model.u_lo, model.u_hi)
    return {"v": vs, "u": u, "s": s}


def _spec(net: dict, k: int) -> ActivationSpec:
    from certnet.nn.activations import activation_spec

    name, kw = net["activations"][k]
    return activation_spec(name, **kw)


def input_box(w1: np.ndarray, dv: float) -> np.ndarray | None:
    """Half-widths r of a box |δx_j| ≤ r_j around the polytope {δx : |W_1 δx| ≤ Δv}.

    r_j = max δx_j over the polytope (a linear program, HiGHS), widened by 1e-7 relative so
    that an ellipsoid inside the polytope lies strictly inside the box. The box is only a
    *choice* of region: soundness comes from the containment LMIs, which re-check that the
    ellipsoid lies inside it. None when the polytope is unbounded (rank W_1 < n) or the LP
    fails, and then only the first-layer box is used.
    """
    from scipy.optimize import linprog

    w1 = np.asarray(w1, dtype=np.float64)
    n = w1.shape[1]
    a_ub = np.vstack([w1, -w1])
    b_ub = np.ones(2 * w1.shape[0])
    r = np.empty(n)
    for j in range(n):
        c = np.zeros(n)
        c[j] = -1.0
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=(None, None), method="highs")
        if res.status != 0 or not np.isfinite(res.fun) or -res.fun <= 0:
            return None
        r[j] = -res.fun
    return r * float(dv) * (1 + 1e-7)


def _lipschitz_product(net: dict) -> float:
    """∏ ‖W_k‖₂ ∏ Lip(σ_k) of the folded network, rounded up (norms from
    :func:`certnet.verify.product.spectral_norms`): a certified Lipschitz bound of δx ↦ δu in
    the ℓ2 norm."""
    ws = net["weights"]
    u = np.finfo(np.float64).eps / 2
    val = 1.0
    for s in spectral_norms(ws):
        val *= s
    for k in range(len(ws) - 1):
        val *= _spec(net, k).lipschitz
    return val * (1 + 8 * (2 * len(ws) + 1) * u)


def _min_slope(spec: ActivationSpec, kind: str, c, lo, hi):
    """A slope k ≤ min σ' over [c+lo, c+hi], so that σ(c+δ) − kδ is nondecreasing there.

    S-shaped σ (σ' unimodal): the smaller endpoint derivative; convex σ (σ' nondecreasing): a
    secant just left of c+lo; concave σ: a secant just right of c+hi (a secant on the far side
    of a convex/concave σ lies below σ' inside); identity: 1. Shaded down by 1e-9 relative
    and 1e-9 absolute against round-off, and never below 0 (every σ here is nondecreasing).
    """
    if kind == "linear":
        return np.ones_like(c)
    if kind == "s":
        if spec.name == "tanh":
            k = np.minimum(1.0 - np.tanh(c + lo) ** 2, 1.0 - np.tanh(c + hi) ** 2)
        else:
            s_lo, s_hi = (1.0 / (1.0 + np.exp(-(c + e))) for e in (lo, hi))
            k = np.minimum(s_lo * (1.0 - s_lo), s_hi * (1.0 - s_hi))
        return np.maximum(k * (1 - 1e-9) - 1e-15, 0.0)
    h = 1e-6 * (1.0 + np.abs(c) + np.maximum(-lo, hi))
    if kind == "convex":
        a = c + lo
        k = (_phi(spec, a) - _phi(spec, a - h)) / h
    else:
        b = c + hi
        k = (_phi(spec, b + h) - _phi(spec, b)) / h
    return np.maximum(k * (1 - 1e-9) - 1e-9, 0.0)


def _frame(box: np.ndarray):
    """The input region of ``box`` as a zonotope and as containment rows.

    ``box`` is either a vector r (the box |δx_j| ≤ r_j) or an (n, n) matrix M (the
    parallelotope |M δx| ≤ 1, e.g. aligned with a previous ellipsoid). Returns the generator
    matrix G, a per-state residual e (every δx in the region is G ε + e', |ε| ≤ 1,
    |e'| ≤ e), the rows and the bounds of the containment test. For M, G = M⁻¹ in floating
    point and e bounds R = (I − G M) δx: from δx = G M δx + R δx, ‖δx‖∞ ≤ ‖G‖∞ + ‖R‖∞ ‖δx‖∞,
    so ‖δx‖∞ ≤ 2 ‖G‖∞ while ‖R‖∞ ≤ ½ (checked).
    """
    box = np.asarray(box, dtype=np.float64)
    n = box.shape[0]
    if box.ndim == 1:
        return np.diag(box), np.zeros(n), np.eye(n), box
    G = np.linalg.inv(box)
    u = np.finfo(np.float64).eps
    resid = np.abs(np.eye(n) - G @ box) + 2 * n * u * (np.abs(G) @ np.abs(box))
    if not resid.sum(axis=1).max() <= 0.5:
        raise CertificateError("the input parallelotope's matrix is too ill-conditioned")
    xmax = 2.0 * float(np.abs(G).sum(axis=1).max())
    return G, resid.sum(axis=1) * xmax * (1 + 1e-12), box, np.ones(n)


class _Zonotope:
    """δ = center + G ε + e, ε ∈ [−1, 1]^g, |e| ≤ err: sound affine bounds of a layer's
    deviations as functions of the input box (DeepZ, Singh et al. NeurIPS 2018), with all
    round-off collected in ``err``."""

    def __init__(self, G: np.ndarray, err: np.ndarray):
        self.c = np.zeros(G.shape[0])
        self.G = G
        self.err = err

    def bounds(self):
        rad = np.abs(self.G).sum(axis=1) + self.err
        return self.c - rad, self.c + rad

    def affine(self, w):
        mag = np.abs(self.c) + np.abs(self.G).sum(axis=1) + self.err
        rnd = 4e-16 * (np.abs(w) @ mag) * (w.shape[1] + 2)
        self.c, self.G = w @ self.c, w @ self.G
        self.err = np.abs(w) @ self.err + rnd

    def activation(self, k, g_lo, g_hi, pad):
        """δw ∈ k δv + [g_lo, g_hi]: scale, then one new generator per neuron."""
        mag = np.abs(self.c) + np.abs(self.G).sum(axis=1)
        mid, rad = (g_lo + g_hi) / 2, (g_hi - g_lo) / 2
        self.c = k * self.c + mid
        self.G = np.hstack([k[:, None] * self.G, np.diag(rad)])
        self.err = k * self.err + 4e-16 * (k * mag + np.abs(mid) + rad) + pad


def _propagate(model: LoopModel, net: dict, dv: float, box: np.ndarray | None):
    """Deviation intervals [lo, hi] of every layer's pre-activations over the region
    {|W_1 δx| ≤ Δv} ∩ (input box or parallelotope, see :func:`_frame`): interval propagation of
    the first-layer box, intersected with affine (zonotope) bounds over the input region and,
    at the output, with the Lipschitz bound |δu| ≤ L max ‖δx‖₂. Returns the list of (lo, hi)
    for the hidden layers and the output.
    """
    ws = net["weights"]
    eq = equilibrium(model, net)
    n1 = ws[0].shape[0]
    lo, hi = np.full(n1, -float(dv)), np.full(n1, float(dv))
    zono = None
    if box is not None:
        G, err0, _, _ = _frame(box)
        zono = _Zonotope(G, err0)
        radius = float(np.linalg.norm(np.abs(G).sum(axis=1) + err0)) * (1 + 1e-12)
        zono.affine(ws[0])
    out = []
    for k in range(len(ws)):
        if zono is not None:
            zlo, zhi = zono.bounds()
            lo, hi = np.maximum(lo, zlo), np.minimum(hi, zhi)
        if k == len(ws) - 1:
            break
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)  # δ = 0 (x*) is in the region
        out.append((lo, hi))
        spec = _spec(net, k)
        kind = _act_kind(spec)
        c = eq["v"][k]
        f = lambda v, s=spec: _phi(s, v)  # noqa: E731
        fc = f(c)
        # monotone σ: the output deviation interval is the image of the endpoints
        wlo, whi = f(c + lo) - fc, f(c + hi) - fc
        scale = 1.0 + np.abs(fc) + np.abs(c) + np.maximum(-lo, hi)
        wlo, whi = wlo - 8e-16 * scale, whi + 8e-16 * scale
        if zono is not None:
            slope = _min_slope(spec, kind, c, lo, hi)
            # σ(c+δ) − σ(c) − kδ is nondecreasing on [lo, hi]: its range is its endpoint values
            zono.activation(slope, wlo - slope * lo, whi - slope * hi, 1e-15 * (hi - lo))
        w = ws[k + 1]
        mid, rad = (wlo + whi) / 2, (whi - wlo) / 2
        lo, hi = w @ mid - np.abs(w) @ rad, w @ mid + np.abs(w) @ rad
        rnd = 4e-16 * (np.abs(w) @ (np.abs(mid) + rad)) * w.shape[1]
        lo, hi = lo - rnd, hi + rnd
        if zono is not None:
            zono.affine(w)
    if box is not None:
        lip = _lipschitz_product(net) * radius * (1 + 1e-12)
        lo, hi = np.maximum(lo, -lip), np.minimum(hi, lip)
    out.append((np.minimum(lo, 0.0), np.maximum(hi, 0.0)))
    return out


def sector_bounds(
    model: LoopModel,
    net: dict,
    dv: float | None,
    rbar: float | None,
    box: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sectors [α, β] of every channel (hidden neurons, saturated inputs, ψ), in that order.

    ``dv`` is the half-width of the first-layer box |δv_1| ≤ Δv (None: global slope classes);
    ``box`` (optional, with ``dv``) an input box |δx_j| ≤ r_j (a vector r) or parallelotope
    |M δx| ≤ 1 (a matrix M) also enforced on the region, which tightens every interval (see
    :func:`_propagate`); ``rbar`` bounds |C_ψ δx| (None: global ψ sector).
    """
    ws = net["weights"]
    eq = equilibrium(model, net)
    alphas: list[np.ndarray] = []
    betas: list[np.ndarray] = []
    bounds = None if dv is None else _propagate(model, net, dv, box)
    for k in range(len(ws) - 1):
        spec = _spec(net, k)
        kind = _act_kind(spec)
        c = eq["v"][k]
        if kind == "linear":
            a = b = np.ones_like(c)
        elif dv is None:
            a, b = np.full_like(c, spec.alpha), np.full_like(c, spec.beta)
        else:
            f = lambda v, s=spec: _phi(s, v)  # noqa: E731
            a, b = _secant_sector(f, c, *bounds[k], kind, spec.beta)
        alphas.append(a)
        betas.append(b)
    if model.u_lo is not None:
        m = len(model.u_lo)
        if dv is None:
            alphas.append(np.zeros(m))
            betas.append(np.ones(m))
        else:
            clip = _clip(model.u_lo, model.u_hi)
            a, _ = _secant_sector(clip, eq["u"], *bounds[-1], "s", 1.0)
            alphas.append(np.minimum(a, 1.0))
            betas.append(np.ones(m))
    p = model.E.shape[1]
    if p:
        a, b = PSI_FUNCTIONS[model.psi][1](rbar)
        alphas.append(np.full(p, a))
        betas.append(np.full(p, b))
    return np.concatenate(alphas), np.concatenate(betas)


# ------------------------------------------------------------------ the LMI pieces
def _structure(model: LoopModel, net: dict, Bd: np.ndarray | None, Cy: np.ndarray | None):
    """Routing matrices over z = [δx, δw (hidden), δs (if saturated), ψ, d]."""
    ws = net["weights"]
    n, m = model.B.shape
    hidden = [w.shape[0] for w in ws[:-1]]
    N = sum(hidden)
    ms = m if model.u_lo is not None else 0
    p = model.E.shape[1]
    q = 0 if Bd is None else Bd.shape[1]
    nz = n + N + ms + p + q
    if nz > _MAX_Z:
        raise ValueError(
            f"the closed-loop LMI would be {nz}×{nz} (state {n}, {N} neurons); certnet caps it "
            f"at {_MAX_Z} to stay within memory; use method='small-gain' for large networks"
        )
    nc = N + ms + p
    Q = np.zeros((nc, nz))
    Pout = np.zeros((nc, nz))
    Xp = np.zeros((n, nz))
    Xp[:, :n] = model.A
    row, col_prev, width_prev, col = 0, 0, n, n
    for k, h in enumerate(hidden):
        Q[row : row + h, col_prev : col_prev + width_prev] = ws[k]
        Pout[row : row + h, col : col + h] = np.eye(h)
        col_prev, width_prev = col, h
        row += h
        col += h
    wl = ws[-1]
    if ms:
        Q[row : row + m, col_prev : col_prev + width_prev] = wl
        Pout[row : row + m, col : col + m] = np.eye(m)
        Xp[:, col : col + m] = model.B
        row += m
        col += m
    else:
        Xp[:, col_prev : col_prev + width_prev] += model.B @ wl
    if p:
        Q[row : row + p, :n] = model.C_psi
        Pout[row : row + p, col : col + p] = np.eye(p)
        Xp[:, col : col + p] = model.E
        col += p
    Ex = np.zeros((n, nz))
    Ex[:, :n] = np.eye(n)
    Ed = np.zeros((q, nz))
    if q:
        Xp[:, col : col + q] = Bd
        Ed[:, col : col + q] = np.eye(q)
    Ey = None if Cy is None else np.hstack([Cy, np.zeros((Cy.shape[0], nz - n))])
    return Q, Pout, Xp, Ex, Ed, Ey


def _transform(Q, Pout, a, b):
    """Loop transformation z = T z̃: each channel output p_j = c_j q_j + h_j ν_j.

    With c = (α+β)/2 and h = (β−α)/2 the sector QC becomes h²(q² − ν²) ≥ 0, i.e.
    |ν_j| ≤ |q_j|: the same constraint, but nearly linear channels (h ≈ 0) no longer need huge
    multipliers, which keeps the SDP well conditioned. Channels are ordered so that q_j reads
    only δx and earlier channels, so T is built row by row.
    """
    nz = Q.shape[1]
    T = np.eye(nz)
    c, h = (a + b) / 2, (b - a) / 2
    outs = Pout.argmax(axis=1)
    for j, o in enumerate(outs):
        row = c[j] * (Q[j] @ T)
        row[o] += h[j]
        row[o] -= 1.0  # T starts as the identity: replace row o
        T[o] += row
    return T, Q @ T


def _qc_numpy(QT, Pout, lam):
    return QT.T @ (lam[:, None] * QT) - Pout.T @ (lam[:, None] * Pout)


def _containment_rows(model: LoopModel, net: dict, dv, rbar, box=None):
    rows = [net["weights"][0]]
    bounds = [np.full(net["weights"][0].shape[0], dv)]
    if box is not None:
        _, _, r, b = _frame(box)
        rows.append(r)
        bounds.append(b)
    if model.E.shape[1]:
        rows.append(model.C_psi)
        bounds.append(np.full(model.C_psi.shape[0], rbar))
    return np.vstack(rows), np.concatenate(bounds)


def _solve(model, net, dv, rbar, solver, Bd=None, Cy=None, energy=None, box=None):
    import cvxpy as cp

    local = dv is not None
    a, b = sector_bounds(model, net, dv, rbar, box)
    Q, Pout, Xp, Ex, Ed, Ey = _structure(model, net, Bd, Cy)
    n, nz = Ex.shape
    nc = Q.shape[0]
    P = cp.Variable((n, n), symmetric=True)
    lam = cp.Variable(nc, nonneg=True)
    T, QT = _transform(Q, Pout, a, b)
    XT = Xp @ T
    S = QT.T @ cp.diag(lam) @ QT - Pout.T @ cp.diag(lam) @ Pout
    F = XT.T @ P @ XT - Ex.T @ P @ Ex + S
    eps = _SOLVE_MARGIN
    cons = [lam >= 0]
    if Bd is None:
        cons.append(P >> eps * np.eye(n))
        h = None
        objective = cp.Minimize(cp.trace(P))
    else:
        h = cp.Variable(nonneg=True)
        cdist = 1.0 if energy is None else 1.0 / energy
        F = F - cdist * Ed.T @ Ed + h * (Ey.T @ Ey)
        cons.append(P >> eps * np.eye(n))
        objective = cp.Maximize(h)
    cons.append((F + F.T) / 2 << -eps * np.eye(nz))
    if local:
        rows, bnd = _containment_rows(model, net, dv, rbar, box)
        for r, bi in zip(rows, bnd, strict=True):
            M = cp.bmat([[np.array([[bi**2 * (1 - 1e-6)]]), r[None, :]], [r[:, None], P]])
            cons.append((M + M.T) / 2 >> 0)
    prob = cp.Problem(objective, cons)
    t0 = time.perf_counter()
    try:
        prob.solve(solver=solver)
    except cp.error.SolverError as e:
        return {"status": f"solver error: {e}", "time": time.perf_counter() - t0}
    out = {"status": prob.status, "time": time.perf_counter() - t0}
    if prob.status != cp.OPTIMAL or P.value is None:
        return out
    out["P"] = (P.value + P.value.T) / 2
    out["lam"] = np.maximum(lam.value, 0.0)
    if h is not None:
        out["h"] = float(h.value)
    elif local:
        # the decrease LMI is homogeneous in (P, λ): scaling both by c ≥ 1 keeps it and
        # shrinks the ellipsoid by √c, which absorbs the solver's tolerance on containment
        try:
            z = np.linalg.solve(np.linalg.cholesky(out["P"]), rows.T)
        except np.linalg.LinAlgError:
            return out
        worst = float(np.max((z * z).sum(axis=0) / bnd**2))
        c = max(1.0, worst / (1 - 1e-8))
        out["P"], out["lam"] = out["P"] * c, out["lam"] * c
    return out


def _check_P(P: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(P)) or not np.allclose(P, P.T, rtol=0, atol=1e-12 * np.abs(P).max()):
        raise CertificateError("the stored P is not a finite symmetric matrix")
    P = (P + P.T) / 2
    try:
        return np.linalg.cholesky(P)
    except np.linalg.LinAlgError:
        raise CertificateError("the stored P is not positive definite") from None


def _check_containment(L, rows, bounds, level=1.0):
    # w P⁻¹ wᵀ = |L⁻¹ w|², the squared half-width of {δxᵀPδx ≤ level} along w, over level
    z = np.linalg.solve(L, rows.T)
    width2 = (z * z).sum(axis=0) * level
    worst = float(np.max(width2 / bounds**2))
    if not worst <= 1 - _CONTAIN:
        raise CertificateError(
            f"containment fails: the ellipsoid reaches {math.sqrt(worst):.6g}× the box where "
            "the local sectors hold; the certificate was tampered with or is wrong"
        )


def _check_multipliers(lam: np.ndarray, nc: int) -> None:
    if lam.shape != (nc,) or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise CertificateError(f"the multipliers must be {nc} finite numbers >= 0")


def verify_stability(
    model: LoopModel, net: dict, dv, rbar, P, lam, box=None
) -> tuple[float, float]:
    """Re-prove a stability certificate in float64; return (ρ, ROA volume).

    Raises CertificateError when P is not positive definite, the ellipsoid leaves the sector
    region, the S-procedure matrix is not negative definite on the neuron block, or ρ ≥ 1.
    """
    P = np.asarray(P, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    L = _check_P(P)
    rows, bnd = _containment_rows(model, net, dv, rbar, box)
    _check_containment(L, rows, bnd)
    a, b = sector_bounds(model, net, dv, rbar, box)
    Q, Pout, Xp, Ex, _, _ = _structure(model, net, None, None)
    _check_multipliers(lam, Q.shape[0])
    n = P.shape[0]
    T, QT = _transform(Q, Pout, a, b)
    XT = Xp @ T
    F0 = XT.T @ P @ XT + _qc_numpy(QT, Pout, lam)
    Fxx, Fxr, Frr = F0[:n, :n], F0[:n, n:], F0[n:, n:]
    ev = np.linalg.eigvalsh(Frr)
    if not ev.max() < 0:
        raise CertificateError(
            "the S-procedure matrix is not negative definite on the nonlinearity block; "
            "the multipliers do not prove a decrease"
        )
    S = Fxx - Fxr @ np.linalg.solve(Frr, Fxr.T)
    Li = np.linalg.inv(L)
    rho2 = float(np.linalg.eigvalsh(Li @ ((S + S.T) / 2) @ Li.T).max())
    rho2 = max(rho2, 0.0) * (1 + 1e-12) + 1e-14
    if not rho2 < 1:
        raise CertificateError(
            f"V(x⁺) ≤ ρ² V(x) holds only with ρ² = {rho2:.9g} ≥ 1: no decrease is proved"
        )
    vol = math.pi ** (n / 2) / math.gamma(n / 2 + 1) / math.sqrt(np.prod(np.diag(L)) ** 2)
    return math.sqrt(rho2), vol


def solve_stability(model, net, dv, rbar, solver, box=None):
    """One SDP at fixed (Δv, r̄, box): min trace P subject to decrease and containment."""
    return _solve(model, net, dv, rbar, solver, box=box)


def solve_l2(model, net, dv, rbar, solver, Bd, Cy, energy, box=None):
    """One SDP at fixed (Δv, r̄, box): max h = 1/γ² subject to dissipation (and containment)."""
    return _solve(model, net, dv, rbar, solver, Bd=Bd, Cy=Cy, energy=energy, box=box)


def verify_l2(model, net, dv, rbar, P, lam, h, Bd, Cy, energy, box=None) -> float:
    """Re-prove an ℓ2-gain certificate in float64; return γ = √(c/h)."""
    P = np.asarray(P, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    L = _check_P(P)
    if dv is not None:
        rows, bnd = _containment_rows(model, net, dv, rbar, box)
        _check_containment(L, rows, bnd)
    if not (math.isfinite(h) and h > 0):
        raise CertificateError(f"the gain multiplier h = 1/γ² must be > 0, got {h!r}")
    a, b = sector_bounds(model, net, dv, rbar, box if dv is not None else None)
    Q, Pout, Xp, Ex, Ed, Ey = _structure(model, net, Bd, Cy)
    _check_multipliers(lam, Q.shape[0])
    cdist = 1.0 if energy is None else 1.0 / energy
    T, QT = _transform(Q, Pout, a, b)
    XT = Xp @ T
    F = XT.T @ P @ XT - Ex.T @ P @ Ex + _qc_numpy(QT, Pout, lam) - cdist * Ed.T @ Ed + h * Ey.T @ Ey
    top = float(np.linalg.eigvalsh((F + F.T) / 2).max())
    if not top < -1e-13 * max(1.0, np.abs(F).max()):
        raise CertificateError(
            f"the dissipation inequality fails (largest eigenvalue {top:.3g} ≥ 0); the "
            "certificate was tampered with or is wrong"
        )
    return math.sqrt(cdist / h) * (1 + 1e-12)
