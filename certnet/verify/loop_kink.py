"""A kink at the equilibrium: the core of a region proved by positive homogeneity.

A ReLU (leaky ReLU, GroupSort) network without biases switches every neuron at x̂ = 0, so the
loop map G(x) = F(x, g ⊙ sat(π(x))) has no derivative there and neither the Krawczyk test nor
a contraction bound can hold near it (the Clarke hull of its Jacobians contains "every neuron
off", the open loop). Such a network is positively homogeneous, π(t d) = t π(d) for t ≥ 0, and
this module uses that instead:

* **shell**: V(G(x)) ≤ q V(x) with q < 1 on every cell meeting the sphere |w| = r₀, w = Lᵀ(x − x̂)
  (:func:`~certnet.verify.loop_bnb.prove`, V measured from x̂; cells away from x̂ resolve the
  neurons' switching);
* **scaling**: with z = (d, u(d)), u(d) = g ⊙ π(d) (no saturation on the core, checked), and
  e = F(x̂, 0) − x̂, the mean-value form gives G(x̂ + d) − x̂ = e + M(z) z with M(z) in the hull
𝓜 of [∂F/∂x, ∂F/∂u] over the box X × U around the core. For |w(x̂ + d)| = r₀ and 0 < t ≤ 1,

      |w⁺(x̂ + t d)| ≤ t (√q r₀ + κ) + 2 |Lᵀe|,   κ = ‖ |Lᵀ| (width 𝓜) |Z| ‖₂,

  |Z| the box of |z|; so with ρ_h = √q + κ/r₀ < 1 and ε = 2|Lᵀe|: |w⁺| ≤ ρ_h |w| + ε on the
  whole ball |w| ≤ r₀.

The ball is then invariant, every trajectory in it converges into the ball |w| ≤ b, b = ε/(1 −
ρ_h), and that ball holds a fixed point (Brouwer: G maps it into itself). ε is the plant's
round-off at the origin (about 1e-300 for a plant with F(0, 0) = 0), so b is far below any
state resolution; the fixed point's box stored in the certificate is the a priori x̂ ± R_EQ (1 +
|x̂|), which the proof checks contains that ball.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from certnet.errors import CertificateError
from certnet.verify import interval as iv
from certnet.verify.jet import Jet, as_jet
from certnet.verify.loop_bnb import Frame, Problem, largest_radius, prove

__all__ = ["HOMOGENEOUS", "R_EQ", "KinkCore", "Homogeneous", "not_homogeneous",
           "core", "fixed_point_box"]

#: Activations with σ(t v) = t σ(v) for t ≥ 0.
HOMOGENEOUS = ("identity", "relu", "leaky_relu", "groupsort")
R_EQ = 1e-100  #: half-width of the fixed point's box, relative to 1 + |x̂|


@dataclass(frozen=True)
class KinkCore:
    """A core proved by homogeneity.

    Attributes
    ----------
    radius : float
        r₀ (units of |w|).
    rho : float
        ρ_h < 1: |w⁺| ≤ ρ_h |w| + eps on |w| ≤ r₀.
    eps : float
        ε = 2|Lᵀ(F(x̂, 0) − x̂)| (upper bound).
    cells : int
        Cells of the shell test.
    """

    radius: float
    rho: float
    eps: float
    cells: int

    @property
    def ball(self) -> float:
        """b = ε/(1 − ρ_h): the invariant ball that holds a fixed point (units of |w|)."""
        return float(iv.up(self.eps / iv.down(1.0 - self.rho)))


def _linear_observation(loop, x: np.ndarray, half: np.ndarray) -> bool:
    """h(x) = C x on the box x ± half, proved: h(0) encloses to exactly 0 and ∂h/∂x to one
    exact matrix over the box (the mean-value theorem then leaves no other h)."""
    if loop.observation_kind in ("state", "output"):  # x, or a StateSpace's C x
        return True
    n = len(x)
    eye = np.eye(n)[None]
    at = as_jet(loop.observation(Jet(x[None], x[None], eye, eye)))
    box = as_jet(loop.observation(Jet((x - half)[None], (x + half)[None], eye, eye)))
    return bool(at.dlo is not None and box.dlo is not None and np.all(at.lo == 0)
                and np.all(at.hi == 0) and np.array_equal(box.dlo, box.dhi)
                and np.all(np.isfinite(box.dlo)))


def not_homogeneous(loop, x: np.ndarray, half: np.ndarray | None = None) -> str | None:
    """Why the loop's control is not positively homogeneous about x on the box x ± half
    (default ±1); None when it is."""
    x = np.asarray(x, dtype=np.float64)
    half = np.ones(len(x)) if half is None else half
    acts = sorted({a.name for a in loop.stack.activations} - set(HOMOGENEOUS))
    if acts:
        return f"its activations {acts} are not positively homogeneous"
    if any(np.any(b != 0) for b in loop.biases):
        return "the network has nonzero biases (or input/output offsets)"
    if np.any(x != 0):
        return f"the equilibrium {x.tolist()} is not the origin, where the network's kinks meet"
    if not (np.all(loop.u_lo < 0) and np.all(loop.u_hi > 0)):
        return "the input saturates at the equilibrium"
    if not _linear_observation(loop, x, half):
        return "the network's input is not proved linear in the state there"
    return None


class Homogeneous:
    """The loop near a homogeneous kink, sampled (heuristics for the shape search, never part
    of a proof): one step from x̂ + d for small d in 512·n directions.

    Attributes
    ----------
    A : ndarray (n, n)
        The least-squares linear map with G(x̂ + d) − x̂ ≈ A d (a describing linearisation:
        ∂G/∂x does not exist at x̂).
    """

    def __init__(self, loop, x0: np.ndarray, half: np.ndarray, seed: int = 0):
        import torch

        from certnet.verify.loop_model import flush_subnormals

        n = len(x0)
        rng = np.random.default_rng(seed)
        self.d = rng.standard_normal((512 * n, n)) * (1e-6 * np.asarray(half))
        with torch.no_grad(), flush_subnormals():
            self.g = loop.step(torch.as_tensor(x0 + self.d)).numpy() - x0
        A, *_ = np.linalg.lstsq(self.d, self.g, rcond=None)
        self.A = A.T

    def rate(self, P: np.ndarray) -> float:
        """max √(V(G(x))/V(x)) over the samples: V's sampled decrease factor at the kink."""
        v = np.einsum("bi,ij,bj->b", self.d, P, self.d)
        vp = np.einsum("bi,ij,bj->b", self.g, P, self.g)
        return float(np.sqrt((vp / v).max()))

    def best_shape(self, P0: np.ndarray) -> np.ndarray:
        """P minimising :meth:`rate` (Nelder–Mead from P0, a fixed number of evaluations)."""
        from scipy.optimize import minimize

        n = len(P0)
        L0 = np.linalg.cholesky((P0 + P0.T) / 2)
        iu = np.tril_indices(n, -1)

        def matrix(p):
            L = np.zeros((n, n))
            L[np.diag_indices(n)] = np.exp(np.clip(p[:n], -300, 300))
            L[iu] = p[n:]
            return L @ L.T

        p0 = np.concatenate([np.log(np.diag(L0)), L0[iu]])
        res = minimize(lambda p: self.rate(matrix(p)), p0, method="Nelder-Mead",
                       options={"maxfev": 400 * len(p0), "xatol": 1e-9, "fatol": 1e-12})
        return matrix(res.x)


def _ball_box(frame: Frame, r0: float) -> np.ndarray:
    """Half-widths of a box around x̂ holding the ball |w| ≤ r₀ (x − x̂ = L^{−T}w)."""
    rows = np.sqrt((frame.M * frame.M).sum(1))
    return iv.up(r0 * rows * (1 + frame.eta) * (1 + 1e-12))


def core(loop, frame: Frame, r0: float, *, max_cells: int, fixed: bool = False
         ) -> KinkCore | None:
    """Prove the homogeneous core of radius r₀ (module docstring); None when it does not hold
    (or, with ``fixed``, CertificateError saying which part failed)."""
    def fail(what: str):
        if fixed:
            raise CertificateError(f"the homogeneous core does not hold: {what}; the "
                                   "certificate was made for another loop or tampered with")
        return None

    x0, n = frame.x0, len(frame.x0)
    hx = _ball_box(frame, r0)
    why = not_homogeneous(loop, x0, hx)
    if why:
        return fail(why)
    X = Jet.box((x0 - hx)[None], (x0 + hx)[None])
    net = loop.network_jet(as_jet(loop.observation(X)))  # π before the saturation
    if not (np.all(net.lo > loop.u_lo) and np.all(net.hi < loop.u_hi)):
        return fail(f"the input may saturate within |w| ≤ {r0:.3g}")
    U = (net.lo[0], net.hi[0])
    if loop.input_gain is not None:
        U = iv.mul(U, loop.input_gain)
    (jx_lo, jx_hi), (ju_lo, ju_hi) = loop.plant_jacobians(x0 - hx, x0 + hx, *U)
    width = iv.up(np.concatenate([jx_hi - jx_lo, ju_hi - ju_lo], axis=1))
    Z = np.concatenate([hx, np.maximum(np.abs(U[0]), np.abs(U[1]))])
    k = n + len(Z) + 2
    v = iv.up(width @ Z * (1 + 2 * k * iv.U))  # |(M₁ − M₂) z| elementwise
    absL = np.abs(frame.L.T)
    kappa = float(iv.up(np.linalg.norm(iv.up(absL @ v * (1 + 2 * k * iv.U))) * (1 + 1e-12)))
    zero = np.zeros((1, n))
    gc, _ = loop.enclose(zero, zero, x0, np.eye(n))  # G(x̂) = F(x̂, g ⊙ π(0)), π(0) = 0
    e = np.maximum(np.abs(iv.down(gc.lo[0] - x0)), np.abs(iv.up(gc.hi[0] - x0)))
    eps = 2.0 * float(iv.up(np.linalg.norm(iv.up(absL @ e * (1 + 2 * k * iv.U))) * (1 + 1e-12)))
    if not (math.isfinite(kappa) and math.isfinite(eps)):
        return fail("the plant's Jacobians have no finite bound on the core")
    problem = Problem.stability(frame, 0.0)  # V measured from x̂ itself
    run = prove if fixed else largest_radius
    shell = run(loop, problem, "decrease", r_in=r0, r_out=r0, max_cells=max_cells)
    if shell.radius < r0:
        return None
    rho = float(iv.up(iv.up(math.sqrt(shell.worst) * (1 + 1e-15)) + iv.up(kappa / r0)))
    got = KinkCore(r0, rho, eps, shell.cells)
    if not (rho < 1 and rho * r0 + eps < r0):
        return fail(f"ρ_h = {rho:.9g} (shell √q = {math.sqrt(shell.worst):.9g}, plant "
                    f"curvature term {kappa / r0:.3g}) is not below 1")
    return got


def fixed_point_box(x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed point's box claimed before the core is proved: x̂ ± R_EQ (1 + |x̂|)."""
    rad = R_EQ * (1.0 + np.abs(x0))
    return iv.down(x0 - rad), iv.up(x0 + rad)


def ball_inside_box(frame: Frame, kc: KinkCore, lo: np.ndarray, hi: np.ndarray) -> bool:
    """The ball |w| ≤ b (which holds a fixed point) lies in the box [lo, hi]."""
    h = _ball_box(frame, kc.ball)
    return bool(np.all(frame.x0 - h >= lo) and np.all(frame.x0 + h <= hi))
