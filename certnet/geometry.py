"""Geometry of Frobenius spheres and their products.

A weight matrix ``W`` of a normalised layer lives on the sphere

    S_r = { W : ‖W‖_F = r },   ⟨A, B⟩ = tr(Aᵀ B).

This module holds the sphere maths every optimiser uses, with geoopt's vocabulary:

* ``proju(W, G, r)``    tangent projection        P_W(G) = G − (⟨W, G⟩ / r²) W
* ``projx(W, r)``       closest point on S_r      r W / ‖W‖_F
* ``expmap(W, V, r)``   exponential map           Exp_W(V) = cos(‖V‖/r) W + r sin(‖V‖/r) V/‖V‖
* ``retr(W, V, r)``     projection retraction     r (W + V) / ‖W + V‖_F
* ``dist(W1, W2, r)``   geodesic distance         r · arccos(⟨W1, W2⟩ / r²)
* ``inner(A, B)``       Frobenius inner product

``*_all`` variants map one of them over a list of layers with per-layer radii (the product
manifold S_{r_1} × … × S_{r_L}).

Every function works on any tensor shape (the whole tensor is one point) and keeps the dtype of
its input. The exponential map keeps ‖·‖_F = r to round-off for any step, because
cos² + sin² = 1; for steps below ``SMALL_STEP[dtype]`` it switches to the retraction (the two agree
to third order) so that V/‖V‖ is never formed from round-off.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "EPS",
    "SMALL_STEP",
    "inner",
    "norm",
    "proju",
    "projx",
    "expmap",
    "retr",
    "dist",
    "logmap",
    "is_on_sphere",
    "proju_all",
    "expmap_all",
    "radii_residual",
]

#: Tolerance on ‖W‖_F / r − 1 for "on the sphere", keyed by dtype.
EPS = {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-6, torch.float64: 1e-12}
#: Below this angle ‖V‖/r the exponential map uses the retraction instead.
SMALL_STEP = {torch.float16: 1e-3, torch.bfloat16: 1e-3, torch.float32: 1e-7, torch.float64: 1e-15}


def _as_radius(r: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(r, dtype=like.dtype, device=like.device)


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Frobenius inner product ⟨A, B⟩ = Σ_ij A_ij B_ij (a 0-dim tensor)."""
    return (a * b).sum()


def norm(a: torch.Tensor) -> torch.Tensor:
    """Frobenius norm ‖A‖_F (a 0-dim tensor)."""
    return torch.linalg.vector_norm(a)


def proju(w: torch.Tensor, g: torch.Tensor, r: float | torch.Tensor) -> torch.Tensor:
    """Project ``g`` onto the tangent space of S_r at ``w``.

    P_W(G) = G − (⟨W, G⟩ / r²) W. Applied to a Euclidean gradient this is the Riemannian
    gradient (for the metric induced by the Frobenius inner product).

    Parameters
    ----------
    w : Tensor
        Point on S_r, any shape.
    g : Tensor
        Same shape as ``w``.
    r : float or Tensor
        Radius of the sphere, > 0.
    """
    r = _as_radius(r, w)
    return g - (inner(w, g) / (r * r)) * w


def projx(w: torch.Tensor, r: float | torch.Tensor) -> torch.Tensor:
    """Closest point of S_r to ``w``: r W / ‖W‖_F.

    Raises
    ------
    ValueError
        If ``w`` is zero or not finite (it has no closest point on the sphere).
    """
    n = norm(w)
    if not torch.isfinite(n) or n == 0:
        raise ValueError(
            f"cannot project a matrix with Frobenius norm {float(n)} onto a sphere; "
            "re-initialise the layer (its weights are zero or contain NaN/inf)"
        )
    return w * (_as_radius(r, w) / n)


def expmap(w: torch.Tensor, v: torch.Tensor, r: float | torch.Tensor) -> torch.Tensor:
    """Exponential map of S_r at ``w`` applied to the tangent vector ``v``.

    Exp_W(V) = cos(θ) W + r sin(θ) V / ‖V‖_F with θ = ‖V‖_F / r, the rotation angle in rad.
    The curve t ↦ Exp_W(tV) is a great circle with period 2πr / ‖V‖_F.

    Parameters
    ----------
    w : Tensor
        Point on S_r.
    v : Tensor
        Tangent vector at ``w`` (⟨W, V⟩ = 0); use :func:`proju` first if unsure.
    r : float or Tensor
        Radius of the sphere.
    """
    r = _as_radius(r, w)
    nv = norm(v)
    theta = nv / r
    if theta <= SMALL_STEP.get(w.dtype, 1e-7):
        return retr(w, v, r)
    return torch.cos(theta) * w + (r * torch.sin(theta) / nv) * v


def retr(w: torch.Tensor, v: torch.Tensor, r: float | torch.Tensor) -> torch.Tensor:
    """Projection retraction R_W(V) = r (W + V) / ‖W + V‖_F.

    It agrees with :func:`expmap` when ‖V‖ = r tan θ (a step of length r tan θ turns by θ).
    """
    return projx(w + v, r)


def dist(w1: torch.Tensor, w2: torch.Tensor, r: float | torch.Tensor) -> torch.Tensor:
    """Geodesic distance on S_r: r · arccos(⟨W1, W2⟩ / r²), clamped before ``acos``."""
    r = _as_radius(r, w1)
    c = torch.clamp(inner(w1, w2) / (r * r), -1.0, 1.0)
    return r * torch.arccos(c)


def logmap(w: torch.Tensor, y: torch.Tensor, r: float | torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`expmap`: the tangent vector V at ``w`` with Exp_W(V) = ``y``.

    Defined for ``y`` ≠ −``w``; its norm is :func:`dist` (w, y, r).
    """
    u = proju(w, y - w, r)
    nu = norm(u)
    d = dist(w, y, r)
    if nu == 0:
        return torch.zeros_like(w)
    return u * (d / nu)


def is_on_sphere(
    w: torch.Tensor, r: float | torch.Tensor, *, explain: bool = False
) -> bool | tuple[bool, str]:
    """Whether ‖W‖_F = r to the dtype's tolerance ``EPS[dtype]`` (relative).

    With ``explain=True`` returns ``(ok, reason)``; the reason names the broken invariant.
    """
    r = float(r)
    n = float(norm(w.detach()))
    tol = EPS.get(w.dtype, 1e-6)
    ok = abs(n / r - 1.0) <= tol
    reason = "" if ok else f"‖W‖_F = {n!r} but r = {r!r} (relative tolerance {tol:g})"
    return (ok, reason) if explain else ok


def proju_all(
    ws: Sequence[torch.Tensor], gs: Sequence[torch.Tensor], radii: Sequence[float]
) -> list[torch.Tensor]:
    """:func:`proju` layer by layer on the product S_{r_1} × … × S_{r_L}."""
    _check_lengths(ws, gs, radii)
    return [proju(w, g, r) for w, g, r in zip(ws, gs, radii, strict=True)]


def expmap_all(
    ws: Sequence[torch.Tensor], vs: Sequence[torch.Tensor], radii: Sequence[float]
) -> list[torch.Tensor]:
    """:func:`expmap` layer by layer on the product S_{r_1} × … × S_{r_L}."""
    _check_lengths(ws, vs, radii)
    return [expmap(w, v, r) for w, v, r in zip(ws, vs, radii, strict=True)]


def radii_residual(ws: Sequence[torch.Tensor], radii: Sequence[float]) -> float:
    """max_k |‖W_k‖_F / r_k − 1|: how far a list of layers is from its spheres."""
    _check_lengths(ws, ws, radii)
    return max(
        abs(float(norm(w.detach())) / float(r) - 1.0) for w, r in zip(ws, radii, strict=True)
    )


def _check_lengths(a: Sequence, b: Sequence, radii: Sequence) -> None:
    if not (len(a) == len(b) == len(radii)):
        raise ValueError(
            f"expected one point, one tangent vector and one radius per layer, got "
            f"{len(a)}, {len(b)} and {len(radii)}"
        )
