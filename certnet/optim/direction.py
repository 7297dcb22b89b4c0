"""The search direction of MM and AutoNewton: limited-memory BFGS in angle coordinates.

Write every layer in *angle coordinates*: U_k = W_k / r_k on the unit sphere and c_k = b_k / r_k
(the bias as the extra column of the augmented matrix [W_k | b_k], scaled like it). A step
ΔU_k of norm θ turns W_k by θ rad whatever its radius, and the gradient of the loss in these
coordinates is ĝ = (r_k g_k, r_k h_k)_k, with g_k the Riemannian gradient of W_k and h_k the
gradient of b_k. The default direction is the Riemannian L-BFGS direction (Huang, Gallivan &
Absil 2015, with vector transport by projection):

    P_t = −H_t ĝ_t,

where H_t is the two-loop-recursion inverse-Hessian estimate built from the last
``MEMORY`` = 10 pairs (s_i, y_i): s_i the step taken in angle coordinates and
y_i = ĝ_{i+1} − 𝒯ĝ_i the change of gradient, all moved to the current tangent spaces by
𝒯: V ↦ V − ⟨U, V⟩U on the U-parts (bias parts unchanged), and the initial scaling
H⁰ = (⟨s, y⟩ / ⟨y, y⟩) I of the newest pair. Every inner product is accumulated in float64.
A pair is used only while its curvature is resolved: ⟨s, y⟩ > ``CURVATURE`` · ‖s‖ ‖y‖ with
``CURVATURE`` = 100 ε of the parameters' dtype (2.2e-14 in float64, 1.2e-5 in float32), checked
when it is formed *and* again after every transport (projection can shrink ⟨s, y⟩ to zero). A
pair whose curvature is below that is noise — in float32, steps of ~1e-12 make ⟨s, y⟩ exactly 0
— so it is dropped, and each division by ⟨s, y⟩ is by a number well away from zero; H_t then
stays positive definite in floating point, not only in exact arithmetic. If P_t is nevertheless
not a descent direction, the memory is dropped and P_t = −ĝ_t. The memory length 10 is the
textbook default (Nocedal & Wright, §7.2) and not a tuning knob: the step size is chosen by MM
or AutoNewton.

The direction is then scaled to **unit total angle**: Σ_k ‖(P_k^U, P_k^c)‖ = 1. At curve
parameter η the layers turn by angles θ_k with Σ_k θ_k ≤ η, which is what the majoriser of
:mod:`certnet.optim.mm` assumes (deep relative trust: ∏(1 + θ_k) − 1 ≤ e^{Σθ_k} − 1 ≤ e^η − 1),
exactly as for AGD's equal-angle direction θ_k = η/L.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from certnet.geometry import inner, proju
from certnet.nn.frobenius import FrobeniusLinear

__all__ = ["Direction", "search_direction", "record_step", "DIRECTIONS", "MEMORY", "CURVATURE"]

#: The search directions MM and AutoNewton accept.
DIRECTIONS = ("lbfgs", "gradient")
#: Number of (s, y) pairs the L-BFGS memory keeps.
MEMORY = 10
#: A curvature pair is kept while ⟨s, y⟩ > CURVATURE · ε(dtype) · ‖s‖ ‖y‖ (relative round-off).
CURVATURE = 100.0

Flat = list[torch.Tensor]  # U-parts of every layer, then the bias parts (angle coordinates)


@dataclass
class Direction:
    """A search direction, scaled to unit total angle, in the parameters' own coordinates.

    Attributes
    ----------
    dw : list of Tensor
        Tangent directions D_k at W_k (the curve is Exp_{W_k}(η D_k)).
    db : list of Tensor or None
        Bias directions d_k (the curve is b_k + η d_k); ``None`` where a layer has no
        trainable bias.
    slope : float
        G = −φ'(0) ≥ 0, the decrease rate of the loss along the curve at η = 0.
    turn : float
        max_k ‖D_k‖ / r_k: the largest angle (rad) a layer turns per unit η.
    pairs : int
        Number of curvature pairs the direction was built from (0: steepest descent).
    """

    dw: list[torch.Tensor]
    db: list[torch.Tensor | None]
    slope: float
    turn: float
    pairs: int


def _dot(a: Flat, b: Flat) -> float:
    """Σ ⟨a_i, b_i⟩ accumulated in float64 (float32 parts are promoted before multiplying)."""
    return sum(float(inner(u.double(), v.double())) for u, v in zip(a, b, strict=True))


def _resolved(s: Flat, y: Flat) -> bool:
    """Whether the pair's curvature ⟨s, y⟩ is positive beyond round-off (see module notes)."""
    eps = torch.finfo(s[0].dtype).eps
    sy = _dot(s, y)
    return math.isfinite(sy) and sy > CURVATURE * eps * math.sqrt(_dot(s, s) * _dot(y, y))


def _axpy(alpha: float, x: Flat, y: Flat) -> Flat:
    return [v + alpha * u for u, v in zip(x, y, strict=True)]


def _transport(units: Sequence[torch.Tensor], v: Flat) -> Flat:
    """Project the U-parts onto the tangent spaces at ``units`` (bias parts unchanged)."""
    n = len(units)
    return [proju(u, p, 1.0) for u, p in zip(units, v[:n], strict=True)] + list(v[n:])


def search_direction(
    layers: Sequence[FrobeniusLinear],
    gw: Sequence[torch.Tensor],
    gb: Sequence[torch.Tensor | None],
    memory: dict,
    kind: str = "lbfgs",
) -> Direction:
    """The next search direction, from the gradients and the L-BFGS ``memory``.

    Parameters
    ----------
    layers : sequence of FrobeniusLinear
        The optimised layers (radius r_k, current point W_k).
    gw, gb : sequences of Tensor
        Riemannian gradients of the points and gradients of the biases (``None`` where a layer
        has no trainable bias).
    memory : dict
        L-BFGS memory (``"s"``, ``"y"``: lists of pairs; ``"last"``: the previous step and
        gradient), updated in place; empty at the first step or after a restart. It lives in
        the optimiser state, so ``state_dict`` resumes exactly.
    kind : {"lbfgs", "gradient"}
        ``"gradient"``: steepest descent in angle coordinates (no memory).

    Returns
    -------
    Direction
    """
    units = [lin.point.detach() / lin.radius for lin in layers]
    grad: Flat = [lin.radius * g for lin, g in zip(layers, gw, strict=True)]
    grad += [lin.radius * h for lin, h in zip(layers, gb, strict=True) if h is not None]
    pairs_s, pairs_y = memory.get("s", []), memory.get("y", [])
    if kind == "lbfgs" and "last" in memory:
        step, old = memory.pop("last")
        s, y = _transport(units, step), _axpy(-1.0, _transport(units, old), grad)
        if _resolved(s, y):
            pairs_s, pairs_y = (pairs_s + [s])[-MEMORY:], (pairs_y + [y])[-MEMORY:]
    moved = [
        (_transport(units, s), _transport(units, y))
        for s, y in zip(pairs_s, pairs_y, strict=True)
    ]
    moved = [(s, y) for s, y in moved if _resolved(s, y)]
    pairs_s, pairs_y = [s for s, _ in moved], [y for _, y in moved]
    q = list(grad)
    alphas = []
    for s, y in zip(reversed(pairs_s), reversed(pairs_y), strict=True):
        a = _dot(s, q) / _dot(s, y)
        alphas.append(a)
        q = _axpy(-a, y, q)
    if pairs_s:
        gamma = _dot(pairs_s[-1], pairs_y[-1]) / _dot(pairs_y[-1], pairs_y[-1])
        q = [gamma * v for v in q]
    for s, y, a in zip(pairs_s, pairs_y, reversed(alphas), strict=True):
        q = _axpy(a - _dot(y, q) / _dot(s, y), s, q)
    step = [-v for v in q]
    if pairs_s and not _dot(step, grad) < 0.0:  # not a descent direction: restart
        pairs_s, pairs_y, step = [], [], [-v for v in grad]
    if kind == "lbfgs":
        memory["s"], memory["y"] = pairs_s, pairs_y
    n = len(layers)
    it = iter(step[n:])
    parts = [(u, None if h is None else next(it)) for u, h in zip(step[:n], gb, strict=True)]
    sizes = [
        math.sqrt(float(inner(u, u)) + (0.0 if c is None else float(inner(c, c)))) for u, c in parts
    ]
    total = sum(sizes)
    if total == 0.0 or not math.isfinite(total):
        memory.clear()
        dw = [torch.zeros_like(g) for g in gw]
        return Direction(dw, [None if h is None else torch.zeros_like(h) for h in gb], 0.0, 0.0, 0)
    if kind == "lbfgs":
        memory["pending"] = ([v / total for v in step], grad)
    dw = [lin.radius * u / total for lin, (u, _) in zip(layers, parts, strict=True)]
    db = [
        None if c is None else lin.radius * c / total
        for lin, (_, c) in zip(layers, parts, strict=True)
    ]
    slope = -sum(
        float(inner(g, d)) + (0.0 if h is None else float(inner(h, e)))
        for g, d, h, e in zip(gw, dw, gb, db, strict=True)
    )
    turn = max(float(inner(u, u)) ** 0.5 for u, _ in parts) / total
    return Direction(dw, db, max(slope, 0.0), turn, len(pairs_s))


def record_step(memory: dict, eta: float) -> None:
    """Tell the memory that the step η along the last direction was taken (η = 0: none was).

    Stores the step s = η P̂ (angle coordinates) and the gradient it started from; the next
    :func:`search_direction` turns them into the pair (s, y). A zero step drops the memory.
    """
    pending = memory.pop("pending", None)
    if pending is None:
        return
    if eta <= 0.0:
        memory.clear()
        return
    unit, grad = pending
    memory["last"] = ([eta * v for v in unit], grad)
