"""Contraction of the real loop on a box, by one structured matrix inequality (for n ≥ 3).

Cells do not scale with the state's dimension (:mod:`loop_bnb`); this module proves the same
kind of region with one small SDP per box instead. Over a box X of states (and the inputs the
loop applies there) every element of the loop has a *slope range*, computed on interval jets of
its real code:

* the observation h and the plant's update F (or its exact zero-order-hold flow): interval
  Jacobians H ∈ H₀ ± R_h, ∂F/∂x ∈ A₀ ± R_x, ∂F/∂u ∈ B₀ ± R_u over X × U;
* every neuron: σ' over the neuron's pre-activation interval on X, [α_i, β_i];
* the input saturation: 1, 0, or [0, 1] where the input may reach a limit; an uncertain
  actuator gain: its range.

For two states x, x' ∈ X the increments then satisfy Δy = H̃Δx, Δw_i = s_iΔv_i, …,
Δx⁺ = Ã Δx + B̃ Δa with every gain in its range (mean-value theorem on the convex box). Each
uncertain gain is written p = c q + h ν, |ν| ≤ |q| (c the midpoint, h the half-width: a loop
transformation that keeps nearly exact elements from needing large multipliers), and the
S-procedure LMI

    X₊ᵀ P X₊ − ρ² E_xᵀ P E_x + Σ_j λ_j (q_jᵀq_j − e_jᵀe_j) ⪯ 0,   λ ≥ 0,

over z = [Δx, ν], proves |G(x) − G(x')|_P ≤ ρ|x − x'|_P on X: the loop contracts there. With
x' = x̄ (the proved fixed point, in X), every ellipsoid {|x − x̄|_P ≤ r} inside X is invariant and
every trajectory from it converges. The box is searched (a few SDPs, CVXOPT): X = x̂ ± s·h for
the half-widths h of a proposed shape, s halved until feasible and then bisected upward; each
SDP maximises the ellipsoid inside X (min tr(P diag(h²))).

The ℓ2 gain uses the same increments from x̄ with a disturbance, x⁺ = G(x) + B_d d: with
P̃ = P/γ² and h = 1/γ², the dissipation LMI X₊ᵀP̃X₊ − E_xᵀP̃E_x + Σλ(q q ᵀ − e eᵀ) − E_dᵀE_d +
h E_yᵀE_y ⪯ 0 is linear, and {V ≤ γ²e} = {xᵀP̃x ≤ e} ⊂ X keeps every trajectory driven by
Σ|d|² ≤ e inside the box where the slope ranges hold; h is maximised on the smallest box scale
where the LMI is feasible (scales tried from small to large, screened ones skipped).

:func:`verify` and :func:`verify_gain` re-derive every range from the box in float64 interval
arithmetic, rebuild the LMI from the stored P and λ, and recompute ρ (by a Schur complement) or
γ; the solver's values are never used.
"""

from __future__ import annotations

import math
import time

import numpy as np

from certnet.errors import CertificateError
from certnet.verify import interval as iv
from certnet.verify.jet import Jet, as_jet
from certnet.verify.loop_shape import linear_rate

__all__ = ["search", "vertex_radius", "reach_ratio", "verify", "gain_search", "verify_gain",
           "region_radius", "fixed_point_box", "core_multipliers", "verify_core", "MAX_Z"]

MAX_Z = 400  #: size check: the LMI is (n + channels)² — refused beyond this
_MARGIN = 1e-6  # the SDP asks for this much more than the check needs
_SHRINK = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625)
_BISECT = 3
_SCREEN_BISECT = 8  # bisections of the cheap vertex screen (resolution 2^(1/256))
_VERTEX_SAMPLES = 64
_GAIN_SCALES = tuple(2.0**k for k in range(2, -6, -1))


# ------------------------------------------------------------------ slope ranges on a box
def _centred(lo: np.ndarray, hi: np.ndarray, fn) -> Jet:
    """``fn`` on the box (jets) intersected with its centred form around the box's centre."""
    mid = 0.5 * lo + 0.5 * hi
    box = as_jet(fn(Jet.box(lo[None], hi[None])))
    cen = as_jet(fn(Jet(mid[None], mid[None])))
    spread = iv.up(np.einsum("bik,k->bi", np.maximum(np.abs(box.dlo), np.abs(box.dhi)),
                             0.5 * (hi - lo)))
    return Jet(np.maximum(box.lo, iv.down(cen.lo - spread)),
               np.minimum(box.hi, iv.up(cen.hi + spread)), box.dlo, box.dhi)


def ranges(loop, lo: np.ndarray, hi: np.ndarray) -> dict:
    """Every element's slope range over the box [lo, hi] (module docstring)."""
    from certnet.verify import loop_model

    n, m = loop.n, loop.m
    y = _centred(lo, hi, lambda x: as_jet(loop.observation(x)))
    H = (y.dlo[0], y.dhi[0])
    layers = []
    h = y
    for k, (w, b) in enumerate(zip(loop.weights, loop.biases, strict=True)):
        v = h @ w.T + b
        if k == len(loop.weights) - 1:
            u = v
            break
        spec = loop.stack.activations[k]
        slope = _slope(spec, (v.lo[0], v.hi[0]))
        layers.append(slope)
        h = loop_model._ACT[spec.name](v, spec.kwargs)
    sat = _clip_slope(u.lo[0], u.hi[0], loop.u_lo, loop.u_hi)
    a = loop_model._clip(Jet(u.lo, u.hi), loop.u_lo, loop.u_hi)
    a_lo, a_hi = a.lo[0], a.hi[0]
    gain = None
    if loop.input_gain is not None:
        gain = loop.input_gain
        prod = iv.mul((a_lo, a_hi), gain)
        a_lo, a_hi = prod
    Jx, Ju = loop.plant_jacobians(lo, hi, a_lo, a_hi)
    finite = [H, *layers, sat, Jx, Ju]
    if not all(np.all(np.isfinite(p[0])) and np.all(np.isfinite(p[1])) for p in finite):
        raise CertificateError("a slope range is unbounded on the box (a singularity or an "
                               f"overflow: {'; '.join(iv.unbounded()) or 'overflow'})")
    return {"H": H, "layers": layers, "sat": sat, "gain": gain, "Jx": Jx, "Ju": Ju,
            "n": n, "m": m}


def _slope(spec, v) -> tuple[np.ndarray, np.ndarray]:
    """[min σ', max σ'] over each neuron's interval (Clarke hull at kinks)."""
    from certnet.verify.loop_model import _ACT

    lo, hi = v
    x = Jet(lo[None], hi[None], np.eye(len(lo))[None], np.eye(len(lo))[None])
    out = _ACT[spec.name](x, spec.kwargs)
    d_lo = np.diagonal(out.dlo[0]).copy()
    d_hi = np.diagonal(out.dhi[0]).copy()
    if spec.name == "groupsort":
        raise TypeError("the SDP route needs elementwise activations; GroupSort couples "
                        "neurons — use the cell route (strategy='cells')")
    return d_lo, d_hi


def _clip_slope(lo, hi, u_lo, u_hi):
    inside = (lo > u_lo) & (hi < u_hi)
    outside = (hi < u_lo) | (lo > u_hi)
    s_lo = np.where(inside, 1.0, 0.0)
    s_hi = np.where(outside, 0.0, 1.0)
    return s_lo, s_hi


# ------------------------------------------------------------------ the structured LMI
class _Builder:
    """Signals as rows over z = [Δx, ν₁, ν₂, …]; each uncertain gain adds a ν."""

    def __init__(self, n: int):
        self.n = n
        self.nz = n
        self.q: list[np.ndarray] = []  # channel inputs (rows, padded later)
        self.nu: list[int] = []  # channel ν columns
        self.h: list[float] = []

    def gain(self, row: np.ndarray, c: float, h: float) -> np.ndarray:
        """The signal c q + h ν for the input row q (a new ν when h > 0)."""
        out = c * row
        if h > 0:
            self.q.append(row)
            self.nu.append(self.nz)
            self.h.append(h)
            self.nz += 1
            out = np.concatenate([out, np.zeros(self.nz - len(out))])
            out[self.nz - 1] = h
        return out

    def pad(self, rows: list[np.ndarray]) -> np.ndarray:
        return np.stack([np.concatenate([r, np.zeros(self.nz - len(r))]) for r in rows])


def _sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b for rows of different lengths (shorter rows end in zeros)."""
    if len(a) < len(b):
        a, b = b, a
    out = a.copy()
    out[: len(b)] += b
    return out


def _matrix_map(b: _Builder, rows: list[np.ndarray], J) -> list[np.ndarray]:
    """Signals J·(rows) for an interval matrix J = (lo, hi): Σ_j (c_ij q_j + h_ij ν_ij)."""
    c, h = iv.midrad(J)
    out = []
    for i in range(c.shape[0]):
        acc = np.zeros(b.nz)
        for j in range(c.shape[1]):
            if c[i, j] != 0 or h[i, j] != 0:
                acc = _sum(acc, b.gain(rows[j], float(c[i, j]), float(h[i, j])))
        out.append(acc)
    return out


def _lin(b: _Builder, rows: list[np.ndarray], W: np.ndarray) -> list[np.ndarray]:
    R = b.pad(rows)
    return list(W @ R)


def _diag(b: _Builder, rows: list[np.ndarray], s) -> list[np.ndarray]:
    c, h = 0.5 * (s[0] + s[1]), 0.5 * (s[1] - s[0])
    return [b.gain(r, float(ci), float(hi_)) for r, ci, hi_ in zip(rows, c, h, strict=True)]


def structure(loop, rng: dict, Bd: np.ndarray | None = None):
    """The LMI's routing: X₊ (n, nz), E_x (n, nz), channel inputs Q (C, nz), ν selectors
    E_ν (C, nz), and the disturbance columns (for the ℓ2 gain)."""
    n = rng["n"]
    b = _Builder(n)
    x = list(np.eye(n))
    y = _matrix_map(b, x, rng["H"])
    h = y
    for k, w in enumerate(loop.weights[:-1]):
        v = _lin(b, h, w)
        h = _diag(b, v, rng["layers"][k])
    u = _lin(b, h, loop.weights[-1])
    a = _diag(b, u, rng["sat"])
    if rng["gain"] is not None:
        a = _diag(b, a, rng["gain"])
    xp = _matrix_map(b, x, rng["Jx"])
    xu = _matrix_map(b, a, rng["Ju"])
    q = 0 if Bd is None else Bd.shape[1]
    if b.nz + q > MAX_Z:
        raise ValueError(
            f"the contraction LMI would be {b.nz + q}×{b.nz + q} (state {n}, {b.nz - n} "
            f"uncertain elements); certnet caps it at {MAX_Z}; use strategy='cells'"
        )
    Xp = b.pad(xp) + b.pad(xu)
    nz = b.nz + q
    Xp = np.hstack([Xp, np.zeros((n, q))])
    if q:
        Xp[:, b.nz:] = Bd
    Ex = np.zeros((n, nz))
    Ex[:, :n] = np.eye(n)
    Q = np.hstack([b.pad(b.q), np.zeros((len(b.q), q))]) if b.q else np.zeros((0, nz))
    Enu = np.zeros((len(b.nu), nz))
    Enu[np.arange(len(b.nu)), b.nu] = 1.0
    Ed = np.zeros((q, nz))
    if q:
        Ed[:, b.nz:] = np.eye(q)
    return Xp, Ex, Q, Enu, Ed


# ------------------------------------------------------------------ solve and verify
def _rows(loop, lo: np.ndarray, hi: np.ndarray):
    """The contraction LMI's rows (X₊, E_x, Q, E_ν) on the box [lo, hi]; raises
    CertificateError where the loop has no bounded ranges there."""
    Xp, Ex, Q, Enu, _ = structure(loop, ranges(loop, lo, hi))
    return Xp, Ex, Q, Enu


def _inside_box(P, half: np.ndarray) -> list:
    """cvxpy constraints putting {xᵀPx ≤ 1} inside the box |x_j| ≤ half_j: (P⁻¹)_jj ≤ half_j²,
    as the Schur complements [[half_j², e_jᵀ], [e_j, P]] ⪰ 0 (with a 1e-6 margin)."""
    import cvxpy as cp

    n = len(half)
    cons = []
    for j in range(n):
        e = np.zeros((n, 1))
        e[j] = 1.0
        M = cp.bmat([[np.array([[half[j] ** 2 * (1 - 1e-6)]]), e.T], [e, P]])
        cons.append((M + M.T) / 2 >> 0)
    return cons


def _run_sdp(prob, solver: str) -> dict:
    """Solve with the named solver; {"status", "time"} (a solver error is a status)."""
    import cvxpy as cp

    t0 = time.perf_counter()
    try:
        prob.solve(solver=solver)
    except cp.error.SolverError as e:
        return {"status": f"solver error: {e}", "time": time.perf_counter() - t0}
    return {"status": prob.status, "time": time.perf_counter() - t0}


def _structured(lmi) -> dict | None:
    """The structured interior-point solve (:mod:`certnet.verify.lmi_solver`); None unless it
    reached its gap tolerance (the caller then poses the same SDP in cvxpy)."""
    from certnet.verify import lmi_solver

    t0 = time.perf_counter()
    got = lmi_solver.solve(lmi)
    if got["status"] != "optimal":
        return None
    return {"status": "optimal", "time": time.perf_counter() - t0, "P": got["P"],
            "lam": np.maximum(got["lam"], 0.0), "h": got["h"], "solver": "certnet structured",
            "newton_steps": got["iterations"]}


def _solve(Xp, Ex, Q, Enu, box_half, solver: str):
    """min tr(P diag(h²)) subject to the contraction LMI and the unit ellipsoid inside the box:
    by the structured solver, else (not converged) in cvxpy with ``solver``."""
    from certnet.verify.lmi_solver import LoopLMI

    n, nz = Ex.shape
    a = 1.0 / (box_half**2 * (1 - 1e-6))
    got = _structured(LoopLMI(Xp, Ex, Q, Enu, np.zeros((nz, nz)), 1 - 1e-4, a,
                              np.diag(box_half**2), margin=_MARGIN))
    if got is not None:
        return got
    import cvxpy as cp

    C = Q.shape[0]
    P = cp.Variable((n, n), symmetric=True)
    lam = cp.Variable(C, nonneg=True)
    S = Q.T @ cp.diag(lam) @ Q - Enu.T @ cp.diag(lam) @ Enu if C else 0
    F = Xp.T @ P @ Xp - (1 - 1e-4) * (Ex.T @ P @ Ex) + S
    cons = [(F + F.T) / 2 << -_MARGIN * np.eye(nz), P >> _MARGIN * np.eye(n),
            *_inside_box(P, box_half)]  # the unit ellipsoid lies in the box
    out = _run_sdp(cp.Problem(cp.Minimize(cp.trace(P @ np.diag(box_half**2))), cons), solver)
    if out["status"] == cp.OPTIMAL and P.value is not None:
        out["P"] = (P.value + P.value.T) / 2
        out["lam"] = np.maximum(lam.value, 0.0) if C else np.zeros(0)
    return out


def _rho(P, lam, Xp, Ex, Q, Enu) -> float:
    """√ of the smallest ρ² with X₊ᵀPX₊ + Σλ(qqᵀ − eeᵀ) ⪯ ρ² E_xᵀPE_x, by a Schur complement in
    float64; raises CertificateError when the ν block is not negative definite."""
    n = P.shape[0]
    F0 = Xp.T @ P @ Xp
    if Q.shape[0]:
        F0 = F0 + Q.T @ (lam[:, None] * Q) - Enu.T @ (lam[:, None] * Enu)
    F0 = (F0 + F0.T) / 2
    Fxx, Fxr, Frr = F0[:n, :n], F0[:n, n:], F0[n:, n:]
    if Frr.size:
        if not np.linalg.eigvalsh(Frr).max() < 0:
            raise CertificateError("the LMI's uncertainty block is not negative definite; the "
                                   "multipliers do not prove a contraction")
        S = Fxx - Fxr @ np.linalg.solve(Frr, Fxr.T)
    else:
        S = Fxx
    L = np.linalg.cholesky(P)
    Li = np.linalg.inv(L)
    rho2 = float(np.linalg.eigvalsh(Li @ ((S + S.T) / 2) @ Li.T).max())
    return math.sqrt(max(rho2, 0.0) * (1 + 1e-10) + 1e-14)


def verify(loop, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, P: np.ndarray,
           lam: np.ndarray) -> float:
    """Re-prove the contraction on the box [lo, hi] from P and λ; returns ρ < 1.

    Raises
    ------
    CertificateError
        P is not positive definite, the multipliers do not fit, or ρ ≥ 1.
    """
    Xp, Ex, Q, Enu = _rows(loop, lo, hi)
    lam = np.asarray(lam, dtype=np.float64).reshape(-1)
    if lam.shape != (Q.shape[0],) or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise CertificateError(f"the multipliers must be {Q.shape[0]} finite numbers ≥ 0")
    P = np.asarray(P, dtype=np.float64)
    try:
        np.linalg.cholesky((P + P.T) / 2)
    except np.linalg.LinAlgError:
        raise CertificateError("the stored P is not positive definite") from None
    rho = _rho((P + P.T) / 2, lam, Xp, Ex, Q, Enu)
    if not rho < 1:
        raise CertificateError(f"the LMI proves only ρ = {rho:.9g} ≥ 1: no contraction")
    return rho


def region_radius(P: np.ndarray, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """The largest r with {(x − x₀)ᵀP(x − x₀) ≤ r²} inside the box (rounded down)."""
    Pi = np.linalg.inv(P)
    room = np.minimum(x0 - lo, hi - x0)
    return float(np.min(room / np.sqrt(np.diag(Pi)))) * (1 - 1e-9)


def _realisations(Xp: np.ndarray, Q: np.ndarray, Enu: np.ndarray, n: int):
    """δ ↦ M(δ) = X_x + X_ν (I − D Q_ν)⁻¹ D Q_x, D = diag(δ): the linear map Δx ↦ Δx⁺ of the
    LMI's loop with every uncertain element fixed to ν_i = δ_i q_i, |δ_i| ≤ 1 (Q_ν is strictly
    lower triangular: every element reads earlier ones)."""
    cols = Enu.argmax(axis=1)
    Qx, Qn, Xx, Xn = Q[:, :n], Q[:, cols], Xp[:, :n], Xp[:, cols]
    eye = np.eye(len(cols))

    def M(d: np.ndarray) -> np.ndarray:
        return Xx + Xn @ np.linalg.solve(eye - d[:, None] * Qn, d[:, None] * Qx)

    return M, len(cols)


def _signs(count: int, samples: int, seed: int):
    """δ = 0, then ``samples`` random sign vectors (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    yield np.zeros(count)
    for _ in range(samples):
        yield rng.choice([-1.0, 1.0], count)


def vertex_radius(Xp: np.ndarray, Q: np.ndarray, Enu: np.ndarray, n: int, *,
                  samples: int = _VERTEX_SAMPLES, seed: int = 0) -> float:
    """A lower bound of the largest spectral radius of the loop's realisations in the LMI.

    If the LMI holds, every realisation M(δ) (:func:`_realisations`) contracts in |·|_P, so
    ρ(M(δ)) < 1: a δ with ρ(M(δ)) ≥ 1 proves the LMI infeasible without solving it. The δ
    tried: 0, ``samples`` random sign vectors, then two passes of single sign flips from the
    worst one (deterministic for a given ``seed``).
    """
    M, count = _realisations(Xp, Q, Enu, n)
    worst, worst_d = -1.0, None
    for d in _signs(count, samples, seed):
        if (r := linear_rate(M(d))) > worst:
            worst, worst_d = r, d
    for _ in range(2):
        for i in range(count):
            d = worst_d.copy()
            d[i] = -d[i] if d[i] else 1.0
            if (r := linear_rate(M(d))) > worst:
                worst, worst_d = r, d
    return worst


def reach_ratio(Xp: np.ndarray, Q: np.ndarray, Enu: np.ndarray, Bd: np.ndarray, n: int,
                half: np.ndarray, energy: float, *, samples: int = 32, seed: int = 0) -> float:
    """max_j √(e W_jj) / half_j over realisations: how far the states a disturbance of energy e
    can reach from x̂ stick out of the box (> 1: out).

    W = Σ_k M^k B_d B_dᵀ (M^k)ᵀ is the reachability Gramian of a realisation (M(δ), B_d), whose
    reachable set under Σ|d|² ≤ e is {x : xᵀW⁻¹x ≤ e}, of half-widths √(e W_jj). The
    dissipation LMI keeps every realisation's trajectories from x̂ in {V ≤ e}, which it puts in
    the box, so a ratio > 1 proves it infeasible. Realisations tried: δ = 0 and ``samples``
    random sign vectors (those with ρ(M) < 1).
    """
    import warnings

    import scipy.linalg as sla

    M, count = _realisations(Xp, Q, Enu, n)
    worst = 0.0
    for d in _signs(count, samples, seed):
        A = M(d)
        if not linear_rate(A) < 1:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            W = sla.solve_discrete_lyapunov(A, Bd @ Bd.T)
        worst = max(worst, float(np.max(np.sqrt(energy * np.maximum(np.diag(W), 0.0)) / half)))
    return worst


def search(loop, x0: np.ndarray, half: np.ndarray, *, solver: str = "CVXOPT") -> tuple[
        dict | None, list]:
    """The largest box x₀ ± s·half on which the SDP proves a contraction; returns its data (box,
    P, λ, ρ, scale) and the log of attempts.

    Screen, then solve: the scales of :data:`_SHRINK` are screened by :func:`vertex_radius` (a
    realisation with spectral radius ≥ 1 rules the LMI out without a solve), the first that
    passes is refined by :data:`_SCREEN_BISECT` bisections of the screen, and the SDP is solved
    there. When it fails, s halves until it succeeds and is then bisected :data:`_BISECT` times
    with SDPs (each still screened first). The screen only skips solves; every region comes
    from a solved, re-verified LMI.
    """
    log: list = []
    built: dict = {}

    def rows(s):
        if s not in built:
            lo, hi = iv.down(x0 - s * half), iv.up(x0 + s * half)
            try:
                built[s] = lo, hi, _rows(loop, lo, hi)
            except CertificateError as e:
                log.append({"scale": s, "status": str(e), "time": 0.0})
                built[s] = None
        return built[s]

    def screened(s) -> bool:
        got = rows(s)
        if got is None:
            return False
        Xp, _, Q, Enu = got[2]
        r = vertex_radius(Xp, Q, Enu, loop.n)
        if r >= 1:
            log.append({"scale": s, "status": "skipped: a realisation of the loop has spectral "
                        f"radius {r:.6g} ≥ 1", "time": 0.0, "vertex_radius": r})
        return r < 1

    def attempt(s):
        if not screened(s):
            return None
        lo, hi, (Xp, Ex, Q, Enu) = rows(s)
        res = _solve(Xp, Ex, Q, Enu, s * half, solver)
        entry = {"scale": s, "status": res["status"], "time": res["time"]}
        log.append(entry)
        if "P" not in res:
            return None
        try:
            entry["rho"] = rho = _rho(res["P"], res["lam"], Xp, Ex, Q, Enu)
        except (CertificateError, np.linalg.LinAlgError) as e:
            entry["status"] = f"does not re-verify ({e})"
            return None
        return {"lo": lo, "hi": hi, "P": res["P"], "lam": res["lam"], "rho": rho, "scale": s} \
            if rho < 1 else None

    top = next((s for s in _SHRINK if screened(s)), None)
    if top is None:
        return None, log
    if top < 1:  # the screen fails at 2·top: refine where it passes
        s_ok, s_bad = top, 2 * top
        for _ in range(_SCREEN_BISECT):
            s = math.sqrt(s_ok * s_bad)
            s_ok, s_bad = (s, s_bad) if screened(s) else (s_ok, s)
        top = s_ok
    best, s_ok, s_bad = attempt(top), top, None
    while best is None and s_ok / 2 >= _SHRINK[-1]:
        s_ok, s_bad = s_ok / 2, s_ok
        best = attempt(s_ok)
    if best is None:
        return None, log
    if s_bad is not None:  # the SDP failed at s_bad: bisect with SDPs
        for _ in range(_BISECT):
            s = math.sqrt(s_ok * s_bad)
            got = attempt(s)
            if got is not None:
                best, s_ok = got, s
            else:
                s_bad = s
    return best, log


# ------------------------------------------------------------------ ℓ2 gain
def _solve_gain(Xp, Ex, Q, Enu, Ed, Ey, half, energy, solver):
    """max h subject to the dissipation LMI and {xᵀPx ≤ e} inside the box: by the structured
    solver, else (not converged) in cvxpy with ``solver``."""
    from certnet.verify.lmi_solver import LoopLMI

    n, nz = Ex.shape
    a = energy / (half**2 * (1 - 1e-6))
    got = _structured(LoopLMI(Xp, Ex, Q, Enu, -Ed.T @ Ed, 1.0, a, np.zeros((n, n)), 1.0, Ey,
                              _MARGIN))
    if got is not None and got["h"] > 0:
        return got
    import cvxpy as cp

    C = Q.shape[0]
    P = cp.Variable((n, n), symmetric=True)
    lam = cp.Variable(C, nonneg=True)
    h = cp.Variable(nonneg=True)
    S = Q.T @ cp.diag(lam) @ Q - Enu.T @ cp.diag(lam) @ Enu if C else 0
    F = Xp.T @ P @ Xp - Ex.T @ P @ Ex + S - Ed.T @ Ed + h * (Ey.T @ Ey)
    cons = [(F + F.T) / 2 << -_MARGIN * np.eye(nz), P >> _MARGIN * np.eye(n),
            *_inside_box(P / energy, half)]  # {xᵀPx ≤ e} inside the box
    out = _run_sdp(cp.Problem(cp.Maximize(h), cons), solver)
    if out["status"] == cp.OPTIMAL and P.value is not None and h.value and h.value > 0:
        out.update({"P": (P.value + P.value.T) / 2, "h": float(h.value),
                    "lam": np.maximum(lam.value, 0.0) if C else np.zeros(0)})
    return out


def _gain(P, lam, h, Xp, Ex, Q, Enu, Ed, Ey) -> float:
    """γ = 1/√h proved by the dissipation LMI in float64 (raises when it fails)."""
    F = Xp.T @ P @ Xp - Ex.T @ P @ Ex - Ed.T @ Ed + h * (Ey.T @ Ey)
    if Q.shape[0]:
        F = F + Q.T @ (lam[:, None] * Q) - Enu.T @ (lam[:, None] * Enu)
    top = float(np.linalg.eigvalsh((F + F.T) / 2).max())
    if not top < -1e-12 * max(1.0, float(np.abs(F).max())):
        raise CertificateError(f"the dissipation inequality fails (largest eigenvalue "
                               f"{top:.3g} ≥ 0)")
    return 1.0 / math.sqrt(h) * (1 + 1e-12)


def _gain_rows(loop, lo, hi, Bd, Cy):
    rng = ranges(loop, lo, hi)
    Xp, Ex, Q, Enu, Ed = structure(loop, rng, Bd)
    Ey = np.hstack([Cy, np.zeros((Cy.shape[0], Ex.shape[1] - Cy.shape[1]))])
    return Xp, Ex, Q, Enu, Ed, Ey


def verify_gain(loop, x0, lo, hi, P, lam, h, Bd, Cy, energy, *, r_eq: float = 0.0) -> float:
    """Re-prove a stored gain certificate on the box; returns γ.

    Raises
    ------
    CertificateError
        The LMI fails, or {xᵀP̃x ≤ e} leaves the box.
    """
    P = np.asarray(P, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64).reshape(-1)
    Xp, Ex, Q, Enu, Ed, Ey = _gain_rows(loop, lo, hi, Bd, Cy)
    if lam.shape != (Q.shape[0],) or np.any(lam < 0) or not np.all(np.isfinite(lam)):
        raise CertificateError(f"the multipliers must be {Q.shape[0]} finite numbers ≥ 0")
    if not (math.isfinite(h) and h > 0):
        raise CertificateError(f"h = 1/γ² must be > 0, got {h!r}")
    if region_radius(P / energy, x0, lo, hi) < 1.0 + _shift(P / energy, r_eq):
        raise CertificateError("{V ≤ γ² e} leaves the box the slope ranges hold on")
    return _gain(P, lam, h, Xp, Ex, Q, Enu, Ed, Ey)


def _shift(P: np.ndarray, r_eq: float) -> float:
    """|x̄ − x̂|_P ≤ ‖P^½‖ r_eq: how far the true fixed point may move a level set."""
    return float(np.linalg.norm(np.linalg.cholesky(P), 2)) * r_eq * (1 + 1e-12)


def gain_search(loop, x0: np.ndarray, half: np.ndarray, Bd: np.ndarray, Cy: np.ndarray,
                energy: float, *, solver: str = "CVXOPT", r_eq: float = 0.0
                ) -> tuple[dict | None, list]:
    """γ on the smallest box x₀ ± s·half, s = 1/32, 1/16, …, 4, where it is proved (module
    docstring): large boxes loosen the slope ranges, small ones cannot hold {V ≤ γ²e}, so
    the scales are tried from the smallest up and the first proved one is kept (on the demo
    vehicle of seeds 0–2 it was also the smallest γ of all scales, with 1 SDP per shape
    instead of 2–3). A box is skipped unsolved where :func:`vertex_radius` finds a
    realisation that does not contract (the dissipation inequality with d = 0 would make
    every realisation contract) or :func:`reach_ratio` finds one whose energy-reachable set
    leaves the box."""
    log, best = [], None
    for s in sorted(_GAIN_SCALES):
        lo, hi = iv.down(x0 - s * half), iv.up(x0 + s * half)
        try:
            rows = _gain_rows(loop, lo, hi, Bd, Cy)
        except CertificateError as e:
            log.append({"scale": s, "status": str(e), "time": 0.0})
            continue
        entry = {"scale": s, **_gain_attempt(loop, x0, lo, hi, rows, Bd, s * half, energy,
                                             solver, r_eq)}
        proof = {k: entry.pop(k) for k in ("P", "lam", "h") if k in entry}
        log.append(entry)
        if "gamma" in entry:
            best = {"lo": lo, "hi": hi, **proof, "gamma": entry["gamma"], "scale": s}
            break  # larger boxes only loosen the slope ranges
    return best, log


def _gain_attempt(loop, x0, lo, hi, rows, Bd, half, energy, solver, r_eq) -> dict:
    """One box of :func:`gain_search`: its log entry, with γ, P, λ and h when it is proved."""
    Xp, _, Q, Enu, _, _ = rows
    r = vertex_radius(Xp, Q, Enu, loop.n)
    if r >= 1:
        return {"status": "skipped: a realisation of the loop has spectral "
                f"radius {r:.6g} ≥ 1", "time": 0.0, "vertex_radius": r}
    out = reach_ratio(Xp, Q, Enu, Bd, loop.n, half, energy)
    if out > 1:
        return {"status": "skipped: the states a disturbance of this energy reaches in a "
                f"realisation of the loop stick out of the box ({out:.4g}× its half-width)",
                "time": 0.0, "reach_ratio": out}
    res = _solve_gain(*rows, half, energy, solver)
    entry = {"status": res["status"], "time": res["time"]}
    if "P" not in res:
        return entry
    try:
        entry["gamma"] = _gain(res["P"], res["lam"], res["h"], *rows)
        if region_radius(res["P"] / energy, x0, lo, hi) < 1.0 + _shift(res["P"] / energy, r_eq):
            raise CertificateError("the storage's level set leaves the box")
    except (CertificateError, np.linalg.LinAlgError) as e:
        entry.pop("gamma", None)
        entry["status"] = f"does not re-verify ({e})"
        return entry
    entry.update(P=res["P"], lam=res["lam"], h=res["h"])
    return entry


# ------------------------------------------------------------------ a fixed P: cores, fixed points
def _ellipse_box(P: np.ndarray, x0: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """A box holding {|x − x₀|_P ≤ r} (outward rounded)."""
    half = r * np.sqrt(np.diag(np.linalg.inv(P))) * (1 + 1e-9)
    return iv.down(x0 - half), iv.up(x0 + half)


def _solve_fixed(Xp, Ex, Q, Enu, P, solver):
    """min ρ² over λ ≥ 0 with X₊ᵀPX₊ − ρ²E_xᵀPE_x + Σλ(qqᵀ − eeᵀ) ⪯ 0, for a given P."""
    import cvxpy as cp

    nz = Ex.shape[1]
    C = Q.shape[0]
    lam = cp.Variable(C, nonneg=True)
    t = cp.Variable()
    S = Q.T @ cp.diag(lam) @ Q - Enu.T @ cp.diag(lam) @ Enu if C else 0
    F = Xp.T @ P @ Xp - t * (Ex.T @ P @ Ex) + S
    out = _run_sdp(cp.Problem(cp.Minimize(t), [(F + F.T) / 2 << -_MARGIN * np.eye(nz)]),
                   solver)
    if out["status"] != cp.OPTIMAL:
        return None
    return np.maximum(lam.value, 0.0) if C else np.zeros(0)


def core_multipliers(loop, x0: np.ndarray, P: np.ndarray, r: float, *,
                     solver: str = "CVXOPT") -> tuple[np.ndarray, float] | None:
    """Multipliers proving that the loop contracts in |·|_P on a box holding the ball
    {|x − x₀|_P ≤ r}, and the ρ they prove; None when the LMI fails. The core of a region
    when cells cannot prove it (a kink of the network at the equilibrium, e.g. ReLU without
    biases: every slope is [0, 1] there, which an interval Jacobian cannot follow but the
    S-procedure can)."""
    lo, hi = _ellipse_box(P, x0, r)
    try:
        Xp, Ex, Q, Enu = _rows(loop, lo, hi)
    except CertificateError:
        return None
    lam = _solve_fixed(Xp, Ex, Q, Enu, P, solver)
    if lam is None:
        return None
    try:
        rho = _rho(P, lam, Xp, Ex, Q, Enu)
    except (CertificateError, np.linalg.LinAlgError):
        return None
    return (lam, rho) if rho < 1 else None


def verify_core(loop, x0: np.ndarray, P: np.ndarray, r: float, lam: np.ndarray) -> float:
    """Re-prove a core found by :func:`core_multipliers`; returns ρ < 1."""
    lo, hi = _ellipse_box(P, x0, r)
    return verify(loop, x0, lo, hi, P, lam)


def _residual_norm(loop, x0: np.ndarray, P: np.ndarray) -> float:
    """An upper bound of |G(x̂) − x̂|_P from the loop's enclosure at x̂."""
    n = len(x0)
    z = np.zeros((1, n))
    gc, _ = loop.enclose(z, z, x0, np.eye(n))
    d = (iv.down(gc.lo[0] - x0), iv.up(gc.hi[0] - x0))
    L = np.linalg.cholesky(P)
    w = iv.matmul_const(d, L.T)  # Lᵀ d
    far = np.maximum(np.abs(w[0]), np.abs(w[1]))
    return float(iv.up(np.sqrt(iv.up((far * far).sum() * (1 + 4 * iv.U)))))


def fixed_point_box(loop, x0: np.ndarray, *, rel: float = 1e-6,
                    solver: str = "CVXOPT") -> tuple[np.ndarray, np.ndarray] | None:
    """A box that provably holds exactly one fixed point of the loop, by Banach's theorem: the
    contraction LMI on X = x̂ ± rel(1 + |x̂|) gives ρ < 1, and with ε ≥ |G(x̂) − x̂|_P the ball
    {|x − x̂|_P ≤ ε/(1 − ρ)} — if it lies in X — is mapped into itself. Unlike the Krawczyk
    test it needs no derivative at the fixed point, so it proves the equilibria of networks
    with a kink there. None when it fails."""
    half = rel * (1.0 + np.abs(x0))
    lo, hi = iv.down(x0 - half), iv.up(x0 + half)
    try:
        Xp, Ex, Q, Enu = _rows(loop, lo, hi)
    except CertificateError:
        return None
    res = _solve(Xp, Ex, Q, Enu, half, solver)
    if "P" not in res:
        return None
    try:
        rho = _rho(res["P"], res["lam"], Xp, Ex, Q, Enu)
    except (CertificateError, np.linalg.LinAlgError):
        return None
    if not rho < 1:
        return None
    radius = _residual_norm(loop, x0, res["P"]) / (1 - rho) * (1 + 1e-9) + 1e-300
    if radius > region_radius(res["P"], x0, lo, hi):
        return None
    return _ellipse_box(res["P"], x0, radius)
