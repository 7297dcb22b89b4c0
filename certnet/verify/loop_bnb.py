"""Branch and bound over an ellipsoid: prove a quadratic inequality of the loop on every cell.

The region is E_R = {x : |w(x)| ≤ R}, w(x) = Lᵀ(x − x̂) (V(x) = |w|², P = LLᵀ), parametrised by z
with x = x̂ + M z, M ≈ L^{−T} in floating point; w is always recomputed from x, so the rounding
of M only costs the factor 1 ± η, η ≥ ‖LᵀM − I‖₂ (bounded in interval arithmetic). Cells are
boxes in z; the loop's jets (:meth:`ClosedLoop.enclose`) enclose w, w⁺ = Wᵀ(G(x) − x̂) and
c = C(x − x̂) over each cell with their derivatives with respect to z, and at its centre. A
:class:`Problem` says which W and C; two tests:

* **decrease**: h = |w⁺|² − |w|² + |c|² < 0 on the cell, bounded by the centred form
  h(Z) ⊆ h(z_c) + ∇h(Z)(Z − z_c) intersected with the naive enclosure, plus the terms that
  move the centre from x̂ to the true fixed point x̄ (|Lᵀ(x̄ − x̂)| ≤ δ). With W = L, C = 0 this
  is V(x⁺) < V(x) (stability); with W = R (RRᵀ = P + PB(γ²I − BᵀPB)⁻¹BᵀP) and C = C_y it is
  the dissipation inequality V(x⁺) − V(x) ≤ γ²|d|² − |y|² for every disturbance d (ℓ2 gain);
* **core** (near x̄, where h vanishes): sup over the cell of ‖(∂w⁺/∂z) T‖₂ ≤ ρ′, bounded by
  ‖mid‖₂ + ‖rad‖_F of the interval matrix. If it holds on every cell meeting the ball
  |w| ≤ r₀, the mean-value theorem along segments from x̄ (which stay in the convex ball)
  bounds |w⁺(x) − w⁺(x̄)| ≤ ρ′(1 − η)⁻¹|T⁻¹ w̃| (w̃ the displacement in frame units): with
  T = I, V measured from x̄ contracts by ρ′²; with T = (I − S)^{−½}, S the performance term in
  frame units, it is the dissipation inequality near x̄.

:func:`largest_radius` processes cells in order of their distance from x̂ (batches of
:data:`BATCH`; the key of a cell is (1 − η) min |z| ≤ min |w|), splits a failing cell along
its widest side, and when a cell cannot be proved at the smallest size (:data:`MIN_SIZE` of its
distance from x̂: cells shrink where V's decrease does) or the budget of cell evaluations is
spent, lowers the radius R below that cell — so the result is the largest radius
up to which every cell was proved, found in one pass. The same routine with the radius fixed
re-proves a stored certificate (:func:`prove`). Everything is deterministic: cell order,
batches and budgets depend on the inputs only.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from certnet.errors import CertificateError
from certnet.verify import interval as iv
from certnet.verify.jet import Jet, as_jet

__all__ = ["Frame", "Problem", "PassResult", "largest_radius", "prove", "ellipsoid_volume",
           "BATCH", "MAX_CELLS", "MIN_SIZE"]

BATCH = 2048  #: cells enclosed per call
MAX_CELLS = 200_000  #: default budget of cell evaluations per pass
MIN_SIZE = 2.0**-11  #: smallest half-width of a cell, relative to its distance from x̂ …
MIN_ABS = 2.0**-24  #: … and never below this, relative to the radius searched


@dataclass(frozen=True)
class Frame:
    """The coordinates of a quadratic Lyapunov function V(x) = |Lᵀ(x − x̂)|².

    Attributes
    ----------
    x0 : ndarray (n,)
        x̂, the centre (the equilibrium's float value).
    L : ndarray (n, n)
        Lower-triangular, P = LLᵀ.
    M : ndarray (n, n)
        ≈ L^{−T}: cells are x = x̂ + M z.
    eta : float
        Upper bound on ‖LᵀM − I‖₂.
    """

    x0: np.ndarray
    L: np.ndarray
    M: np.ndarray
    eta: float

    @classmethod
    def of(cls, x0: np.ndarray, P: np.ndarray) -> Frame:
        """The frame of V(x) = (x − x̂)ᵀ P (x − x̂); P must be positive definite."""
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 2 or P.shape[0] != P.shape[1] or not np.all(np.isfinite(P)):
            raise CertificateError(f"P must be a finite square matrix, got shape {P.shape}")
        try:
            L = np.linalg.cholesky((P + P.T) / 2)
        except np.linalg.LinAlgError:
            raise CertificateError("P is not positive definite") from None
        M = np.linalg.inv(L.T)
        lo, hi = iv.matmul_const((M.T, M.T), L.T)  # (LᵀM)ᵀ
        err = np.maximum(np.abs(lo.T - np.eye(len(x0))), np.abs(hi.T - np.eye(len(x0))))
        eta = float(iv.up(np.sqrt(iv.up((err * err).sum()))))
        if not eta < 1e-6:
            raise CertificateError("P is too ill-conditioned to use as a Lyapunov function")
        return cls(np.asarray(x0, dtype=np.float64), L, M, eta)

    @property
    def P(self) -> np.ndarray:
        return self.L @ self.L.T


@dataclass(frozen=True)
class Problem:
    """The inequality the cells must satisfy (see the module docstring).

    Attributes
    ----------
    frame : Frame
        V(x) = |Lᵀ(x − x̂)|² and the cells' coordinates.
    W : ndarray (n, n)
        w⁺ = Wᵀ(G(x) − x̂) (W = L for stability).
    C : ndarray (r, n) or None
        The performance term |C(x − x̂)|² (None: none).
    T : ndarray (n, n)
        Right factor of the core test.
    r_eq : float
        Upper bound on |x̄ − x̂|₂, the distance from x̂ to the proved fixed point.
    """

    frame: Frame
    W: np.ndarray
    C: np.ndarray | None
    T: np.ndarray
    r_eq: float

    @classmethod
    def stability(cls, frame: Frame, r_eq: float) -> Problem:
        """V(x⁺) < V(x): W = L, no performance term, T = I."""
        n = len(frame.x0)
        return cls(frame, frame.L, None, np.eye(n), float(r_eq))

    def deltas(self) -> tuple[float, float, float]:
        """Upper bounds of |Lᵀ(x̄ − x̂)|, |Wᵀ(x̄ − x̂)|, |C(x̄ − x̂)|."""
        def norm(a):
            return 0.0 if a is None else float(np.linalg.norm(a, 2)) * (1 + 1e-12)

        r = self.r_eq * (1 + 1e-12)
        return norm(self.frame.L) * r, norm(self.W) * r, norm(self.C) * r


def _norm_bounds(w: Jet) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of |w| over each cell."""
    near = np.where((w.lo <= 0) & (w.hi >= 0), 0.0, np.minimum(np.abs(w.lo), np.abs(w.hi)))
    far = np.maximum(np.abs(w.lo), np.abs(w.hi))
    return np.sqrt(np.maximum(iv.down((near * near).sum(-1)), 0.0)), iv.up(np.sqrt(iv.up(
        (far * far).sum(-1) * (1 + 4 * iv.U))))


def _evaluate(loop, problem: Problem, lo: np.ndarray, hi: np.ndarray):
    """(w, w⁺, c) over the cells (jets with z-derivatives) and at their centres."""
    fr = problem.frame
    mid = 0.5 * lo + 0.5 * hi
    xc = Jet(mid, mid) @ fr.M.T + fr.x0
    xb = Jet.box(lo, hi) @ fr.M.T + fr.x0
    dxc, dxb = xc - fr.x0, xb - fr.x0
    gc, gb = loop.advance(xc, xb, 0.5 * (hi - lo))
    box = (dxb @ fr.L, (as_jet(gb) - fr.x0) @ problem.W,
           None if problem.C is None else dxb @ problem.C.T)
    centre = (dxc @ fr.L, (as_jet(gc) - fr.x0) @ problem.W,
              None if problem.C is None else dxc @ problem.C.T)
    return box, centre


def _square_sum(j: Jet) -> Jet:
    from certnet.verify.jet import _square

    return _square(j).sum(dim=-1)


def _h(w: Jet, wp: Jet, c: Jet | None) -> Jet:
    h = _square_sum(wp) - _square_sum(w)
    return h if c is None else h + _square_sum(c)


def _decrease(box, centre, rad: np.ndarray, deltas) -> np.ndarray:
    """Upper bound of h over each cell (centred form ∩ naive), measured from any centre
    within the deltas of x̂."""
    h, hc = _h(*box), _h(*centre)
    grad = np.maximum(np.abs(h.dlo), np.abs(h.dhi))
    spread = iv.up((grad * rad).sum(-1) * (1 + 4 * iv.U) * (1 + rad.shape[-1] * 2 * iv.U))
    out = np.minimum(iv.up(hc.hi + spread), h.hi)
    # |a − ā|² ≤ |a|² + 2|a||ā| + |ā|² for each term (−|w|² gets +2|w|δ only)
    shift = 0.0
    for j, d in zip(box, deltas, strict=True):
        if j is not None and d > 0:
            far = np.sqrt(np.maximum(j.lo**2, j.hi**2).sum(-1))
            shift = shift + 2.0 * far * d + d * d
    out = iv.up(out + shift * (1 + 1e-9))
    return np.where(np.isfinite(out), out, np.inf)


def _spectral_upper(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Upper bound of ‖J‖₂ over interval matrices [lo, hi] (cells, n, k): ‖mid‖₂ + ‖rad‖_F,
    with ‖mid‖₂ from an SVD padded by 1e-13 ‖mid‖_F (its round-off)."""
    mid, rad = iv.midrad((lo, hi))
    ok = np.all(np.isfinite(mid.reshape(len(mid), -1)) & np.isfinite(rad.reshape(len(rad), -1)),
                axis=1)
    mid = np.where(ok[:, None, None], mid, 0.0)
    rad = np.where(ok[:, None, None], rad, 0.0)
    s = np.linalg.norm(mid, ord=2, axis=(1, 2))
    fro_m = np.sqrt((mid * mid).sum((1, 2)))
    fro_r = iv.up(np.sqrt(iv.up((rad * rad).sum((1, 2)) * (1 + 8 * iv.U))))
    out = iv.up(s + 1e-13 * fro_m + fro_r)
    return np.where(ok, out, np.inf)


def _split(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Halve each cell along its widest side; returns the 2·B children."""
    widths = hi - lo
    j = np.argmax(widths, axis=1)
    rows = np.arange(len(lo))
    mid = 0.5 * lo[rows, j] + 0.5 * hi[rows, j]
    lo2, hi1 = lo.copy(), hi.copy()
    hi1[rows, j] = mid
    lo2[rows, j] = mid
    return np.concatenate([lo, lo2]), np.concatenate([hi1, hi])


def _grid(n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A regular grid of cells covering [−radius, radius]ⁿ (4ⁿ cells, 2ⁿ for n > 4)."""
    s = 4 if n <= 4 else 2
    edges = np.linspace(-radius, radius, s + 1)
    idx = np.stack(np.meshgrid(*[np.arange(s)] * n, indexing="ij"), -1).reshape(-1, n)
    return edges[idx], edges[idx + 1]


@dataclass
class PassResult:
    """Outcome of one branch-and-bound pass.

    Attributes
    ----------
    radius : float
        Largest radius R such that every cell meeting {r_in ≤ |w| ≤ R} was proved.
    worst : float
        The worst tested quantity over the proved cells (core: sup ‖∂w⁺/∂z‖₂; decrease:
        sup V(x⁺)/V(x)).
    cells : int
        Cells enclosed.
    failed_at : float or None
        min |w| over the first cell that could not be proved (what limited the radius).
    exhausted : bool
        The budget ran out before every cell was decided.
    where : ndarray or None
        The state at the centre of that cell (n,).
    """

    radius: float
    worst: float
    cells: int
    failed_at: float | None
    exhausted: bool
    where: np.ndarray | None = None


def _core_score(box, T: np.ndarray) -> np.ndarray:
    """sup ‖(∂w⁺/∂z) T‖₂ over each cell."""
    wp = box[1]
    lo, hi = iv.matmul_const((wp.dlo, wp.dhi), T.T, axis=-1)
    return _spectral_upper(lo, hi)


def _run(loop, problem: Problem, kind: str, r_in: float, r_out: float, bound: float,
         max_cells: int, fixed: bool, cover: float | None = None) -> PassResult:
    """One pass (see the module docstring); ``kind`` is "core" or "decrease". In the core,
    a cell passes when sup ‖(∂w⁺/∂z)T‖₂ ≤ ``bound``; in the decrease test when h < 0 (on the
    cells meeting r_in ≤ |w|). With ``fixed`` the radius may not shrink: a failure raises
    CertificateError. The first grid covers |w| ≤ ``cover`` (default r_out)."""
    frame = problem.frame
    n = len(frame.x0)
    deltas = problem.deltas()
    shrink = (1 - frame.eta) * (1 - 1e-12)  # |w| ≥ (1 − η)|z|
    cover = max(r_out, cover or 0.0) / shrink + 1e-300
    lo, hi = _grid(n, cover)
    floor = MIN_ABS * cover
    heap: list = []
    counter = 0
    radius, worst, cells, failed_at, where = r_out, 0.0, 0, None, None
    exhausted = False

    def push(lo_, hi_):
        nonlocal counter
        keys = _norm_bounds(Jet(lo_, hi_))[0] * shrink  # a lower bound of |w| on the cell
        for a, b, k in zip(lo_, hi_, keys, strict=True):
            heapq.heappush(heap, (float(k), counter, a, b))
            counter += 1

    push(lo, hi)
    while heap:
        if cells >= max_cells:
            exhausted = True
            break
        batch = [heapq.heappop(heap) for _ in range(min(BATCH, len(heap)))]
        batch = [b for b in batch if b[0] <= radius]
        if not batch:
            break
        lo, hi = np.stack([b[2] for b in batch]), np.stack([b[3] for b in batch])
        cells += len(lo)
        box, centre = _evaluate(loop, problem, lo, hi)
        near, far = _norm_bounds(box[0])
        rad = 0.5 * (hi - lo)
        if kind == "core":
            score = _core_score(box, problem.T)
            ok = score <= bound
            relevant = near <= radius
        else:
            hup = _decrease(box, centre, rad, deltas)
            ok = hup < 0
            # V(x⁺)/V(x) ≤ 1 + h/V(x) ≤ 1 + h/sup V on the cell, as h < 0 there
            score = np.where(ok, iv.up(1.0 + iv.up(hup / iv.up(far * far))), np.inf)
            relevant = (far >= r_in) & (near <= radius)
        ok |= ~relevant
        small = rad.max(axis=1) <= np.maximum(MIN_SIZE * np.maximum(near, r_in), floor)
        bad = ~ok & small
        if np.any(bad):
            lim = float(near[bad].min())
            if fixed and lim <= radius:
                raise CertificateError(
                    f"the {kind} test fails on a cell at |w| ≥ {lim:.6g} inside the certified "
                    f"radius {radius:.6g}; the certificate was tampered with or is wrong"
                )
            if lim < radius:
                radius = failed_at = lim
                i = np.flatnonzero(bad)[np.argmin(near[bad])]
                where = frame.x0 + frame.M @ (0.5 * lo[i] + 0.5 * hi[i])
        proved = ok & relevant & (near <= radius)
        if np.any(proved):
            worst = max(worst, float(score[proved].max()))
        split = ~ok & ~small & (near <= radius)
        if np.any(split):
            push(*_split(lo[split], hi[split]))
    if exhausted and heap:
        lim = float(heap[0][0])
        if fixed and lim <= radius:
            raise CertificateError(
                f"the {kind} test could not be completed within {max_cells} cells; re-check "
                "with a larger max_cells"
            )
        radius = min(radius, lim)
    return PassResult(radius, worst, cells, failed_at, exhausted, where)


def largest_radius(loop, problem: Problem, kind: str, *, r_in: float = 0.0,
                   r_out: float = 1.0, bound: float = 1.0,
                   max_cells: int = MAX_CELLS) -> PassResult:
    """The largest radius R ≤ ``r_out`` up to which the ``kind`` test holds on every cell."""
    return _run(loop, problem, kind, r_in, r_out, bound, max_cells, fixed=False)


def prove(loop, problem: Problem, kind: str, *, r_in: float, r_out: float,
          bound: float = 1.0, max_cells: int = MAX_CELLS, cover: float | None = None
          ) -> PassResult:
    """Re-prove that the ``kind`` test holds on every cell meeting {r_in ≤ |w| ≤ r_out};
    raises CertificateError otherwise. ``cover``: the ``r_out`` of the search that found
    r_out, so that the cells (and the worst ratio over them) are the search's."""
    return _run(loop, problem, kind, r_in, r_out, bound, max_cells, fixed=True, cover=cover)


def ellipsoid_volume(P: np.ndarray, radius: float = 1.0) -> float:
    """Volume of {x : xᵀPx ≤ radius²} (area for n = 2)."""
    n = P.shape[0]
    return math.pi ** (n / 2) / math.gamma(n / 2 + 1) * radius**n / math.sqrt(np.linalg.det(P))
