"""A region of attraction of the real closed loop: a sublevel set of V proved to shrink.

The certificate: with V(x) = (x − x̂)ᵀP(x − x̂), P = LLᵀ, w = Lᵀ(x − x̂) and the proved fixed point
x̄ (|x̄ − x̂| ≤ r_eq, :meth:`ClosedLoop.equilibrium`),

* **core**: on the ball |w| ≤ r₀, sup ‖∂w⁺/∂z‖₂ ≤ ρ′ < 1 (cell by cell, :mod:`loop_bnb`), so V
  measured from x̄ contracts: V_x̄(G(x)) ≤ ρ_c² V_x̄(x), ρ_c = ρ′/(1 − η) < 1;
* **annulus**: on every cell meeting r_in ≤ |w| ≤ R, r_in = r₀ − 2δ (δ ≥ |Lᵀ(x̄ − x̂)|),
  V_x̄(G(x)) < V_x̄(x).

When the network switches every neuron at x̂ (a bias-free ReLU network), no Jacobian bound can
hold there; the core is then proved by positive homogeneity instead (:mod:`loop_kink`:
|w⁺| ≤ ρ_h|w| + ε on |w| ≤ r₀, ε ≈ 1e-300, so "converges to x̄" reads "converges into a ball of
radius ε/(1 − ρ_h) holding a fixed point"), and the shapes start from the P that makes V decrease
in every sampled direction at the kink.

Then every trajectory starting in S = {|w − w̄| ≤ R − δ} ⊂ {|w| ≤ R} stays in S (V_x̄
decreases), V_x̄ falls by a fixed amount per step while |w| ≥ r_in (the annulus is compact and
each cell's bound is strictly negative), so it enters the ball {|w − w̄| ≤ r₀ − δ}, which is
invariant, and from there converges to x̄ geometrically. The certified region stored is
{x : δxᵀP_R δx ≤ 1} ⊂ S, P_R = P/(R − 2δ)², δx = x − x̂ (with R = r₀ when the annulus adds
nothing: the core alone); the certified value is
ρ = max(ρ_c, sup_annulus √(V(x⁺)/V(x))) < 1.

:func:`search` finds one: a shaped P (:mod:`loop_shape`), the largest core radius among
1/64, 1/512, 1/4096 of the proposal (ρ′ halfway between the linearised rate and 1 first; for
uncertain plants, whose Jacobians do not shrink to one matrix, closer to 1), and the
largest R ≤ 0.98 (just inside the sampled level, where the decrease has a margin and cells
stay few) by one annulus pass; when that pass stops early at a state where V does not decrease
(a real counterexample, or a cell it could not resolve), the shape search is told about the
neighbourhood of that state and one more proposal is proved — the larger certificate wins.
:func:`recheck` re-proves stored data with the radii fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from certnet.errors import CertificateError
from certnet.verify import loop_kink
from certnet.verify.loop_bnb import (
    MAX_CELLS,
    Frame,
    PassResult,
    Problem,
    ellipsoid_volume,
    largest_radius,
    prove,
)
from certnet.verify.loop_shape import ShapeSearch, contraction, linear_rate

__all__ = ["Region", "search", "recheck", "region_matrix", "CORE_RADII"]

CORE_RADII = (1 / 64, 1 / 512, 1 / 4096)  #: core radii tried, relative to the proposal
CORE_SHARE = 0.05  #: share of the cell budget for each core attempt
RETRY_BELOW = 0.3  #: a second proposal is tried when the first proves less than this radius
TARGET = 0.98  #: radius aimed at, relative to the sampled level (a margin keeps cells few)


@dataclass(frozen=True)
class Region:
    """A proved region (the fields the certificate stores).

    Attributes
    ----------
    P_frame : ndarray (n, n)
        P of the Lyapunov function V (its frame).
    radius, core_radius, r_in : float
        R, r₀ and r_in in units of |w|.
    core_bound : float
        ρ′ of the core test.
    rho : float
        The certified decrease factor.
    delta : float
        δ ≥ |Lᵀ(x̄ − x̂)|.
    cells : int
        Cells enclosed (both passes).
    core_lambda : ndarray or None
        The contraction LMI's multipliers when the core was proved by it (then ``core_bound``
        is the ρ it proves) rather than by cells.
    core_kind : {"jacobian", "lmi", "homogeneous"}
        How the core was proved: ‖∂w⁺/∂z‖ by cells, the contraction LMI, or positive
        homogeneity (:mod:`certnet.verify.loop_kink`; then ``core_bound`` is ρ_h).
    core_eps : float
        ε of a homogeneous core (|w⁺| ≤ ρ_h|w| + ε there), else 0.
    cover : float
        The radius the annulus search started from (its first grid; a re-check uses it too).
    """

    P_frame: np.ndarray
    radius: float
    core_radius: float
    r_in: float
    core_bound: float
    rho: float
    delta: float
    cells: int
    core_lambda: np.ndarray | None = None
    core_kind: str = "jacobian"
    core_eps: float = 0.0
    cover: float = TARGET

    @property
    def P(self) -> np.ndarray:
        """The certified region {δxᵀPδx ≤ 1}."""
        return self.P_frame / (self.radius - 2 * self.delta) ** 2

    @property
    def volume(self) -> float:
        return ellipsoid_volume(self.P)


def _rho(core: PassResult, dec: PassResult, frame: Frame, kind: str = "jacobian") -> float:
    rc = core.worst if kind == "homogeneous" else core.worst / (1.0 - frame.eta)
    return math.sqrt(max(rc * rc, dec.worst)) * (1 + 1e-12)


def _kink_core(loop, frame: Frame, budget: int) -> tuple[PassResult | None, float]:
    """The homogeneous core at the largest radius of :data:`CORE_RADII` that holds."""
    for r in CORE_RADII:
        kc = loop_kink.core(loop, frame, r, max_cells=budget)
        if kc is not None:
            return PassResult(r, kc.rho, kc.cells, None, False), kc.eps
    return None, 0.0


def _prove_shape(loop, P: np.ndarray, x0: np.ndarray, r_eq: float, A: np.ndarray,
                 max_cells: int, kink: bool = False
                 ) -> tuple[Region | None, PassResult | None, str]:
    """Core then annulus for one proposal; (region, annulus result, reason if none)."""
    frame = Frame.of(x0, P)
    problem = Problem.stability(frame, r_eq)
    delta = problem.deltas()[0]
    rate = contraction(P, A)
    core, budget = None, int(CORE_SHARE * max_cells)
    if kink:
        return _prove_kinked(loop, frame, problem, delta, max_cells)
    for bound in (0.5 * (1.0 + rate), 1.0 - (1.0 - rate) / 16, 1.0 - 1e-9):
        for r in CORE_RADII:
            core = largest_radius(loop, problem, "core", r_out=r, bound=bound, max_cells=budget)
            if core.radius >= r * (1 - 1e-9) and core.worst > 0 and core.radius > 4 * delta:
                break
            core = None
        if core is not None:
            break
    core_lambda = None
    if core is None:  # e.g. a kink at the equilibrium: the contraction LMI instead of cells
        core, core_lambda = _sdp_core(loop, x0, P, delta)
    if core is None:
        return None, None, (
            f"the core test (‖∂w⁺/∂z‖ < 1 near the equilibrium, for every plant in the set, by "
            f"cells and by the contraction LMI) fails down to radius {CORE_RADII[-1]:.3g} of "
            f"the proposal: the loop is barely contracting there (linearised decrease factor "
            f"{rate:.9g} for the nominal plant)"
        )
    bound = core.worst if core_lambda is not None else bound
    r_in = core.radius - 2 * delta
    dec = _annulus(loop, problem, core, r_in, max_cells)
    kind = "jacobian" if core_lambda is None else "lmi"
    region = Region(frame.P, dec.radius, core.radius, r_in, bound, _rho(core, dec, frame),
                    delta, core.cells + dec.cells, core_lambda, kind)
    return region, dec, ""


def _prove_kinked(loop, frame: Frame, problem: Problem, delta: float, max_cells: int):
    """:func:`_prove_shape` for a loop with a homogeneous kink at x̂."""
    core, eps = _kink_core(loop, frame, int(CORE_SHARE * max_cells))
    if core is None:
        return None, None, (
            f"the homogeneous core test (V(x⁺) ≤ qV(x), q < 1, on a sphere around the kink at "
            f"the equilibrium, then scaled) fails down to radius {CORE_RADII[-1]:.3g} of the "
            "proposal")
    r_in = core.radius - 2 * delta
    dec = _annulus(loop, problem, core, r_in, max_cells)
    region = Region(frame.P, dec.radius, core.radius, r_in, core.worst,
                    _rho(core, dec, frame, "homogeneous"), delta, core.cells + dec.cells,
                    None, "homogeneous", eps)
    return region, dec, ""


def _annulus(loop, problem: Problem, core: PassResult, r_in: float, max_cells: int
             ) -> PassResult:
    dec = largest_radius(loop, problem, "decrease", r_in=r_in, r_out=TARGET,
                         max_cells=max_cells - core.cells)
    if dec.radius <= core.radius:  # the annulus adds nothing: the core alone
        dec = PassResult(core.radius, 0.0, dec.cells, dec.failed_at, dec.exhausted, dec.where)
    return dec


def _sdp_core(loop, x0: np.ndarray, P: np.ndarray, delta: float):
    """The core by :func:`loop_sdp.core_multipliers` (radii :data:`CORE_RADII`): a pass result
    whose ``worst`` is the ρ proved, and the multipliers; (None, None) when none holds."""
    from certnet.verify import loop_sdp

    for r in CORE_RADII:
        try:
            got = loop_sdp.core_multipliers(loop, x0, P, r)
        except (TypeError, ValueError):  # GroupSort, or an LMI too large for the SDP route
            return None, None
        if got is not None and r > 4 * delta:
            lam, rho = got
            return PassResult(r, rho, 0, None, False), lam
    return None, None


def search(loop, x0: np.ndarray, r_eq: float, *, half: np.ndarray | None, grow: bool,
           P: np.ndarray | None = None, max_cells: int = MAX_CELLS, seed: int = 0,
           kink: bool = False) -> tuple[Region | None, dict]:
    """Propose and prove (module docstring). Returns the best region (or None) and a log.
    With ``kink`` (a homogeneous kink at x̂) the core is :mod:`loop_kink`'s and the shapes
    start from a describing linear map instead of ∂G/∂x."""
    homog = loop_kink.Homogeneous(loop, x0, np.ones(len(x0)) if half is None else half,
                                  seed) if kink else None
    A = homog.A if kink else loop.jacobian(x0)
    rate = linear_rate(A)
    log: dict = {"spectral_radius": rate, "attempts": []}
    if not rate < 1:
        what = ("a linear fit of the loop at its kink" if kink else
                "the linearised loop at the equilibrium")
        log["reason"] = (
            f"{what} has spectral radius {rate:.9g} ≥ 1 (eigenvalues "
            f"{np.round(np.linalg.eigvals(A), 6).tolist()}): it is not asymptotically "
            "stable, so no region of attraction exists to certify"
        )
        return None, log
    starts = [] if P is None else [np.asarray(P, dtype=np.float64)]
    if kink:  # V must decrease in every direction at the kink: start from the best such P
        import control

        lyap = control.dlyap(A.T, np.eye(len(x0)))
        starts.append(homog.best_shape(starts[0] if starts else (lyap + lyap.T) / 2))
        log["kink_rate"] = homog.rate(starts[-1])
        if not log["kink_rate"] < 1:
            log["reason"] = (
                "no quadratic V found decreases in every direction at the kink (the best "
                f"sampled one-step factor is {log['kink_rate']:.6g} ≥ 1): the piecewise-linear "
                "loop there has no common quadratic Lyapunov function certnet could find "
                "(one may need several steps or a piecewise quadratic V, which certnet does "
                "not search)")
            return None, log
    shapes = ShapeSearch(loop, x0, A, half, seed=seed, rate=homog.rate if kink else None)
    if P is not None:
        proposal = shapes.propose(starts, grow=False)
    else:
        proposal = shapes.propose(starts, grow=grow)
    if proposal is None:
        log["reason"] = "no quadratic V decreases on the sampled states around the equilibrium"
        return None, log
    best, reason = None, ""
    for attempt in range(2):
        region, dec, reason = _prove_shape(loop, proposal.P, x0, r_eq, A, max_cells, kink)
        log["attempts"].append({
            "proposed_volume": proposal.volume, "samples": proposal.samples,
            "box": proposal.box.tolist(),
            "radius": None if region is None else region.radius,
            "volume": None if region is None else region.volume,
            "stopped_at": None if dec is None or dec.where is None else dec.where.tolist(),
            "reason": reason,
        })
        if region is not None and (best is None or region.volume > best.volume):
            best = region
        if attempt or region is None or dec.where is None or region.radius >= RETRY_BELOW:
            break
        # where the annulus stopped: tell the shape search about its neighbourhood
        spread = 0.05 * np.sqrt(np.diag(np.linalg.inv(proposal.P)))
        rng = np.random.default_rng(seed + 1)
        shapes.add(dec.where - x0 + rng.normal(0.0, 1.0, (1024, len(x0))) * spread)
        nxt = shapes.propose([proposal.P], grow=False)
        if nxt is None:
            break
        proposal = nxt
    if best is None:
        log["reason"] = reason
    return best, log


def recheck(loop, x0: np.ndarray, r_eq: float, region: dict, max_cells: int) -> float:
    """Re-prove stored region data (the fields of :class:`Region`); returns ρ.

    Raises
    ------
    CertificateError
        A test fails on some cell, or the stored radii are inconsistent.
    """
    P = np.asarray(region["P_frame"], dtype=np.float64)
    frame = Frame.of(x0, P)
    problem = Problem.stability(frame, r_eq)
    delta = problem.deltas()[0]
    r0, R, r_in = (float(region[k]) for k in ("core_radius", "radius", "r_in"))
    bound = float(region["core_bound"])
    if not (0 < 4 * delta < r0 <= R and r_in <= r0 - 2 * delta and bound < 1):
        raise CertificateError(
            f"inconsistent stored radii (core {r0!r}, inner {r_in!r}, outer {R!r}, bound "
            f"{bound!r}, δ {delta:.3g}); the certificate was tampered with"
        )
    kind = region.get("core_kind", "jacobian")
    if kind == "homogeneous":
        kc = loop_kink.core(loop, frame, r0, max_cells=max_cells, fixed=True)
        lo, hi = loop_kink.fixed_point_box(x0)
        if kc.rho > bound * (1 + 1e-12) or not loop_kink.ball_inside_box(frame, kc, lo, hi):
            raise CertificateError("the homogeneous core proves less than stored")
        core = PassResult(r0, kc.rho, kc.cells, None, False)
    elif region.get("core_lambda") is not None:
        from certnet.verify import loop_sdp

        rho_c = loop_sdp.verify_core(loop, x0, P, r0, np.asarray(region["core_lambda"],
                                                                 dtype=np.float64))
        if rho_c > bound * (1 + 1e-12):
            raise CertificateError("the core's contraction LMI proves less than stored")
        core = PassResult(r0, rho_c, 0, None, False)
    else:
        core = prove(loop, problem, "core", r_in=0.0, r_out=r0, bound=bound,
                     max_cells=max_cells)
    dec = PassResult(r0, 0.0, 0, None, False) if R <= r0 else prove(
        loop, problem, "decrease", r_in=r_in, r_out=R, max_cells=max_cells,
        cover=float(region.get("cover", R)))
    return _rho(core, dec, frame, kind)


def region_matrix(region: dict, r_eq: float) -> np.ndarray:
    """P_R = P/(R − 2δ)² of stored region data: the region the proof covers."""
    P = np.asarray(region["P_frame"], dtype=np.float64)
    frame = Frame.of(np.zeros(len(P)), P)
    delta = Problem.stability(frame, r_eq).deltas()[0]
    return P / (float(region["radius"]) - 2 * delta) ** 2
