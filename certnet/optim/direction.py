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

from certnet.nn.frobenius import FrobeniusLinear

__all__ = [
    "Direction",
    "search_direction",
    "record_step",
    "angle_gradient",
    "DIRECTIONS",
    "MEMORY",
    "CURVATURE",
]

#: The search directions MM and AutoNewton accept.
DIRECTIONS = ("lbfgs", "gradient")
#: Number of (s, y) pairs the L-BFGS memory keeps.
MEMORY = 10
#: A curvature pair is kept while ⟨s, y⟩ > CURVATURE · ε(dtype) · ‖s‖ ‖y‖ (relative round-off).
CURVATURE = 100.0

Flat = torch.Tensor  # 1-D: the U-parts of every layer, then the bias parts (float64 to combine)


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


class _Layout:
    """Where each layer's U-part sits in a flat vector, and the unit points U_k (float64)."""

    def __init__(self, layers: Sequence[FrobeniusLinear]) -> None:
        self.units = [(lin.point.detach() / lin.radius).reshape(-1).double() for lin in layers]
        ends = torch.tensor([u.numel() for u in self.units]).cumsum(0).tolist()
        self.segments = list(zip([0, *ends[:-1]], ends, strict=True))

    def transport(self, v: torch.Tensor) -> torch.Tensor:
        """Project the U-parts of ``v`` (one flat vector, or one per row) onto the tangent
        spaces at the units (bias parts unchanged)."""
        out = v.clone()
        for (a, b), u in zip(self.segments, self.units, strict=True):
            part = out[..., a:b]
            part -= (part @ u)[..., None] * u
        return out


def _resolved(s: Flat, y: Flat, eps: float) -> bool:
    """Whether the pair's curvature ⟨s, y⟩ is positive beyond round-off (see module notes)."""
    sy = float(torch.dot(s, y))
    return math.isfinite(sy) and sy > CURVATURE * eps * float(s.norm() * y.norm())


def angle_gradient(
    layers: Sequence[FrobeniusLinear],
    gw: Sequence[torch.Tensor],
    gb: Sequence[torch.Tensor | None],
) -> Flat:
    """ĝ = (r_k g_k …, r_k h_k …): the gradient in angle coordinates (points, then biases),
    flattened into one float64 vector."""
    parts = [lin.radius * g.reshape(-1) for lin, g in zip(layers, gw, strict=True)]
    parts += [
        lin.radius * h.reshape(-1) for lin, h in zip(layers, gb, strict=True) if h is not None
    ]
    return torch.cat(parts).double()


def search_direction(
    layers: Sequence[FrobeniusLinear],
    gw: Sequence[torch.Tensor],
    gb: Sequence[torch.Tensor | None],
    memory: dict,
    kind: str = "lbfgs",
    *,
    pair_gradient: Flat | None = None,
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
        L-BFGS memory (``"s"``, ``"y"``: lists of pairs, each one flat vector in angle
        coordinates, stored in the parameters' dtype and combined in float64; ``"last"``: the
        previous step and gradient), updated in place; empty at the first step or after a
        restart. It lives in the optimiser state, so ``state_dict`` resumes exactly.
    kind : {"lbfgs", "gradient"}
        ``"gradient"``: steepest descent in angle coordinates (no memory).
    pair_gradient : Tensor, optional
        The gradient at the current point, in angle coordinates (:func:`angle_gradient`), of
        the data the last recorded step's start gradient was taken on; the new pair is
        y = pair_gradient − 𝒯(that start gradient). Default: the current gradient (one
        objective). :class:`~certnet.optim.StochasticMM` passes the gradient of the batch the
        last step shares with this one, so that s and y describe one objective.

    Returns
    -------
    Direction
    """
    layout = _Layout(layers)
    dtype = layers[0].point.dtype  # the memory is stored in it (load_state_dict casts to it)
    eps = torch.finfo(dtype).eps
    grad = angle_gradient(layers, gw, gb)
    pairs_s = [v.double() for v in memory.get("s", [])]
    pairs_y = [v.double() for v in memory.get("y", [])]
    if kind == "lbfgs" and "last" in memory:
        step, old = (v.double() for v in memory.pop("last"))
        now = grad if pair_gradient is None else pair_gradient
        s, y = layout.transport(step), now - layout.transport(old)
        if _resolved(s, y, eps):
            pairs_s, pairs_y = (pairs_s + [s])[-MEMORY:], (pairs_y + [y])[-MEMORY:]
    if pairs_s:  # move every pair to the current tangent spaces at once, then re-check it
        S, Yp = layout.transport(torch.stack(pairs_s)), layout.transport(torch.stack(pairs_y))
        keep = [k for k in range(len(S)) if _resolved(S[k], Yp[k], eps)]
        pairs_s, pairs_y = [S[k] for k in keep], [Yp[k] for k in keep]
    q = grad.clone()
    alphas = []
    for s, y in zip(reversed(pairs_s), reversed(pairs_y), strict=True):
        a = float(torch.dot(s, q) / torch.dot(s, y))
        alphas.append(a)
        q -= a * y
    if pairs_s:
        q *= float(torch.dot(pairs_s[-1], pairs_y[-1]) / torch.dot(pairs_y[-1], pairs_y[-1]))
    for s, y, a in zip(pairs_s, pairs_y, reversed(alphas), strict=True):
        q += (a - float(torch.dot(y, q) / torch.dot(s, y))) * s
    step = -q
    if pairs_s and not float(torch.dot(step, grad)) < 0.0:  # not a descent direction: restart
        pairs_s, pairs_y, step = [], [], -grad
    if kind == "lbfgs":
        memory["s"] = [v.to(dtype) for v in pairs_s]
        memory["y"] = [v.to(dtype) for v in pairs_y]
    n_points = layout.segments[-1][1]
    parts, start = [], n_points
    for h in gb:
        if h is None:
            parts.append(None)
        else:
            parts.append(step[start : start + h.numel()])
            start += h.numel()
    sizes = [
        math.sqrt(float(step[a:b].square().sum()) + (0.0 if c is None else float(c.square().sum())))
        for (a, b), c in zip(layout.segments, parts, strict=True)
    ]
    total = sum(sizes)
    if total == 0.0 or not math.isfinite(total):
        memory.clear()
        dw = [torch.zeros_like(g) for g in gw]
        return Direction(dw, [None if h is None else torch.zeros_like(h) for h in gb], 0.0, 0.0, 0)
    if kind == "lbfgs":
        memory["pending"] = ((step / total).to(dtype), grad.to(dtype))
    dw = [
        (lin.radius / total * step[a:b]).reshape(lin.point.shape).to(lin.point.dtype)
        for lin, (a, b) in zip(layers, layout.segments, strict=True)
    ]
    db = [
        None if c is None else (lin.radius / total * c).to(lin.point.dtype)
        for lin, c in zip(layers, parts, strict=True)
    ]
    slope = -float(torch.dot(grad, step)) / total
    turn = max(float(step[a:b].norm()) for a, b in layout.segments) / total
    return Direction(dw, db, max(slope, 0.0), turn, len(pairs_s))


def record_step(memory: dict, eta: float, *, gradient: Flat | None = None) -> None:
    """Tell the memory that the step η along the last direction was taken (η = 0: none was).

    Stores the step s = η P̂ (angle coordinates) and the gradient it started from (or
    ``gradient``, the start gradient of the data the next pair will be formed on, in angle
    coordinates); the next :func:`search_direction` turns them into the pair (s, y). A zero
    step drops the memory.
    """
    pending = memory.pop("pending", None)
    if pending is None:
        return
    if eta <= 0.0:
        memory.clear()
        return
    unit, grad = pending
    memory["last"] = (eta * unit, grad if gradient is None else gradient.to(grad.dtype))
