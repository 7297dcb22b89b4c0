"""Choosing the Lyapunov function: P from the linearised loop, shaped on samples of the real loop.

A proposal is never a proof — :mod:`certnet.verify.loop_bnb` proves whatever is proposed — so
this module may be a heuristic, but a deterministic one (fixed seeds, fixed budgets).

1. A = ∂G/∂x at the equilibrium. Candidates P solve AᵀPA − P + Q = 0 (``control.dlyap``) for
   Q = I and Q = diag(1/s²), s the half-widths of the sampling box: V(x) = δxᵀPδx decreases
   on the linearised loop.
2. States are sampled in the box (half of them scaled by 10^U(−4, 0), so that every scale down
   to the equilibrium is seen) and G is evaluated on them once. For a P the sampled level
   c(P) is the smallest V over samples where V does not strictly decrease (V(G(x)) ≥ V(x), or
   G not finite), capped by the largest level inside the box; the sampled volume of
   {V ≤ c(P)} is ∝ c^{n/2}/√det P. The best candidate is improved by Nelder–Mead over the
   log-Cholesky factor of P (a fixed number of evaluations), keeping V's decrease on the
   linearised loop at least half that of the candidate it started from; the box is doubled
   while the best ellipsoid nearly touches it (its level ≥ :data:`BOX_BINDS` of the box's:
   failing samples that close to the box say little about what lies beyond it).
3. The winner is checked by samples drawn uniformly inside {V ≤ 1.2 c} (where a thin region
   of failing states is far more likely to be hit than in the whole box) and re-shaped with
   them, until they find nothing new. :meth:`ShapeSearch.add` takes further failing states
   (e.g. where a proof failed) for another round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from certnet.verify.loop_model import flush_subnormals

__all__ = ["Proposal", "ShapeSearch", "linear_rate", "contraction"]

SAMPLES = 2048  #: box samples per state dimension and box size
INSIDE = 4096  #: samples per state dimension inside the proposed ellipsoid, per round
GROW = 3  #: doublings of the sampling box at most
BOX_BINDS = 0.75  #: the box is doubled while the sampled level is above this share of the box's
REFINE = 4  #: rounds of samples inside the ellipsoid at most
NM_EVALS = 120  #: Nelder–Mead evaluations per parameter of P


@dataclass(frozen=True)
class Proposal:
    """A proposed Lyapunov matrix, scaled so that its sampled level is 1.

    Attributes
    ----------
    P : ndarray (n, n)
        The proposal is {δxᵀPδx ≤ 1}.
    volume : float
        Its volume.
    box : ndarray (n,)
        Half-widths of the sampling box.
    samples : int
        States simulated so far.
    """

    P: np.ndarray
    volume: float
    box: np.ndarray
    samples: int


def linear_rate(A: np.ndarray) -> float:
    """Spectral radius of A."""
    return float(np.abs(np.linalg.eigvals(A)).max())


def contraction(P: np.ndarray, A: np.ndarray) -> float:
    """‖LᵀAL^{−T}‖₂ (P = LLᵀ): V's decrease factor on the linearised loop is its square."""
    L = np.linalg.cholesky(P)
    return float(np.linalg.norm(L.T @ A @ np.linalg.inv(L.T), 2))


def _params(P: np.ndarray) -> np.ndarray:
    L = np.linalg.cholesky((P + P.T) / 2)
    n = len(P)
    return np.concatenate([np.log(np.diag(L)), L[np.tril_indices(n, -1)]])


def _matrix(p: np.ndarray, n: int) -> np.ndarray:
    L = np.zeros((n, n))
    L[np.diag_indices(n)] = np.exp(np.clip(p[:n], -300, 300))
    L[np.tril_indices(n, -1)] = p[n:]
    return L @ L.T


def _volume(P: np.ndarray, c: float) -> float:
    n = len(P)
    det = np.linalg.det(P)
    if not (det > 0 and math.isfinite(c) and c > 0):
        return 0.0
    return math.pi ** (n / 2) / math.gamma(n / 2 + 1) * c ** (n / 2) / math.sqrt(det)


def _box_level(P: np.ndarray, half: np.ndarray) -> float:
    """The largest c with {δxᵀPδx ≤ c} inside the box |δx_j| ≤ half_j."""
    return float(np.min(half**2 / np.diag(np.linalg.inv(P))))


class ShapeSearch:
    """Samples of the loop around x̄ and the search for P over them (module docstring).

    Parameters
    ----------
    loop : ClosedLoop
    x_eq : ndarray (n,)
        The equilibrium.
    A : ndarray (n, n)
        ∂G/∂x there.
    half : ndarray (n,), optional
        Half-widths of the first sampling box (default 1 per state).
    seed : int
        Seed of every random sample.
    rate : callable, optional
        P ↦ V's decrease factor near x̄ that shaping may not lose more than half of (default
        the linearised loop's, :func:`contraction`; a loop with a kink there passes its own).
    """

    def __init__(self, loop, x_eq: np.ndarray, A: np.ndarray, half=None, *, seed: int = 0,
                 rate=None):
        self.loop, self.x_eq, self.A = loop, np.asarray(x_eq, dtype=np.float64), A
        self.rate = rate or (lambda P: contraction(P, A))
        self.n = len(self.x_eq)
        self.half = np.ones(self.n) if half is None else np.asarray(half, dtype=np.float64)
        self.rng = np.random.default_rng(seed)
        n = self.n
        self._iu = np.triu_indices(n)
        self._w = np.where(self._iu[0] == self._iu[1], 1.0, 2.0)
        self.feat = np.zeros((0, len(self._w)))  # δxᵢδxⱼ of the failing samples …
        self.featp = np.zeros((0, len(self._w)))  # … and of their images
        self.bad_any = np.zeros(0, dtype=bool)  # G not finite there
        self.count = 0

    def _features(self, d: np.ndarray) -> np.ndarray:
        return d[:, self._iu[0]] * d[:, self._iu[1]] * self._w

    def add(self, dx: np.ndarray) -> None:
        """Simulate one step from x̄ + δx for each row of ``dx`` and keep the samples."""
        dx = np.asarray(dx, dtype=np.float64)
        with torch.no_grad(), flush_subnormals():
            g = self.loop.step(torch.as_tensor(self.x_eq + dx)).numpy()
        fine = np.all(np.isfinite(g), axis=1)
        near = np.abs(dx).max(axis=1) < 1e-9 * (1.0 + np.abs(self.x_eq).max())
        keep = ~near
        gx = np.where(fine[:, None], g - self.x_eq, 0.0)
        self.feat = np.vstack([self.feat, self._features(dx[keep])])
        self.featp = np.vstack([self.featp, self._features(gx[keep])])
        self.bad_any = np.concatenate([self.bad_any, ~fine[keep]])
        self.count += len(dx)

    def level(self, P: np.ndarray) -> float:
        """Smallest V over the samples where V does not strictly decrease."""
        p = P[self._iu]
        v, vp = self.feat @ p, self.featp @ p
        bad = self.bad_any | (vp >= v)
        return float(v[bad].min()) if np.any(bad) else math.inf

    def _capped(self, P: np.ndarray) -> float:
        return min(self.level(P), _box_level(P, self.half))

    def shape(self, P0: np.ndarray) -> tuple[np.ndarray, float]:
        """Nelder–Mead on −log volume from P0 (module docstring); returns (P, c)."""
        from scipy.optimize import minimize

        n = self.n
        rho_max = 0.5 * (1.0 + self.rate(P0))

        def cost(p):
            P = _matrix(p, n)
            try:
                if not self.rate(P) <= rho_max:
                    return 1e300
            except np.linalg.LinAlgError:
                return 1e300
            v = _volume(P, self._capped(P))
            return -math.log(v) if v > 0 else 1e300

        p0 = _params(P0)
        res = minimize(cost, p0, method="Nelder-Mead",
                       options={"maxfev": NM_EVALS * len(p0), "xatol": 1e-7, "fatol": 1e-10})
        P = _matrix(res.x if res.fun < cost(p0) else p0, n)
        return P, self._capped(P)

    def box_samples(self) -> None:
        """Samples in the current box, half of them shrunk towards x̄ at every scale."""
        n = self.n
        dx = self.rng.uniform(-1.0, 1.0, (SAMPLES * n, n)) * self.half
        dx[::2] *= 10.0 ** self.rng.uniform(-4, 0, (len(dx[::2]), 1))
        self.add(dx)

    def inside(self, P: np.ndarray, c: float) -> None:
        """Samples uniform in the ellipsoid {δxᵀPδx ≤ 1.2 c}."""
        n = self.n
        u = self.rng.standard_normal((INSIDE * n, n))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        u *= self.rng.uniform(0, 1, (len(u), 1)) ** (1.0 / n) * math.sqrt(1.2 * c)
        L = np.linalg.cholesky(P)
        self.add(np.linalg.solve(L.T, u.T).T)

    def propose(self, starts: list[np.ndarray] | None = None, *, grow: bool = True,
                refine: bool = True) -> Proposal | None:
        """The best shaped ellipsoid (module docstring), or None when none has a positive
        sampled level. ``grow=False`` re-shapes ``starts`` on the samples taken so far (plus
        new ones inside the ellipsoid) without enlarging the box; ``refine=False`` skips
        Nelder–Mead and the inside samples (the best candidate at its sampled level: enough
        where only the ellipsoid's shape is used, as by the contraction SDP)."""
        import control

        n = self.n
        best = None
        for _ in range(GROW + 1 if grow else 1):
            if grow or not self.count:
                self.box_samples()
            cands = list(starts or []) + ([best[0]] if best else [])
            if grow or not cands:
                cands += [(P + P.T) / 2 for P in (
                    control.dlyap(self.A.T, np.eye(n)),
                    control.dlyap(self.A.T, np.diag(1.0 / self.half**2)))]
            # shape only the most promising start (Nelder–Mead is the costly part)
            P0 = max(cands, key=lambda Q: _volume(Q, self._capped(Q)))
            P, c = self.shape(P0) if refine else (P0, self._capped(P0))
            if _volume(P, c) <= 0:
                return None
            best = (P, c)
            if not (grow and c >= BOX_BINDS * _box_level(P, self.half)):
                break
            self.half = self.half * 2.0
        P, c = best
        for _ in range(REFINE if refine else 0):
            self.inside(P, c)
            c_new = self._capped(P)
            if c_new >= 0.98 * c:
                c = c_new
                break
            P, c = self.shape(P)
        return Proposal(P / c, _volume(P, c), self.half.copy(), self.count)
