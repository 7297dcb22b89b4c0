"""Certified H∞ norm of a discrete-time LTI channel and the small-gain test.

H∞ norm by bisection on the Hamiltonian of the bilinear (Tustin) transform: with
z = (1 + s)/(1 − s), the continuous system

    A_c = (A + I)⁻¹(A − I),  B_c = √2 (A + I)⁻¹B,  C_c = √2 C(A + I)⁻¹,  D_c = D − C(A + I)⁻¹B

has the same H∞ norm as the discrete G(z) = C(zI − A)⁻¹B + D, and for γ > σ̄(D_c), γ > ‖G‖∞
iff its Hamiltonian H(γ) has no eigenvalue on the imaginary axis (Boyd, Balakrishnan & Kabamba
1989). The bisection is a search; the **certificate** is the discrete bounded-real (KYP) LMI

    [[AᵀXA − X + CᵀC, AᵀXB], [BᵀXA, BᵀXB − γ²I]] ≺ 0,   X ≻ 0     (D = 0),

with X from the bounded-real Riccati equation at γ (slightly perturbed so the LMI is strict),
re-checked in float64 by Cholesky and eigenvalues. It proves A Schur stable and ‖G‖∞ < γ.

Small gain: if the plant channel u → x has ‖G‖∞ < γ and the controller (network, then the
1-Lipschitz saturation) has ℓ2-Lipschitz constant L, then γ L < 1 makes the loop incrementally
finite-gain ℓ2 stable.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from certnet.errors import CertificateError

__all__ = ["hinf_bisect", "hinf_certificate", "check_kyp"]


def _tustin(A, B, C):
    n = A.shape[0]
    Ai = np.linalg.inv(A + np.eye(n))
    return Ai @ (A - np.eye(n)), math.sqrt(2) * Ai @ B, math.sqrt(2) * C @ Ai, -C @ Ai @ B


def _has_imag_eig(Ac, Bc, Cc, Dc, gamma) -> bool:
    m = Bc.shape[1]
    R = gamma**2 * np.eye(m) - Dc.T @ Dc
    Ri = np.linalg.inv(R)
    Ah = Ac + Bc @ Ri @ Dc.T @ Cc
    p = Cc.shape[0]
    H = np.block([[Ah, Bc @ Ri @ Bc.T], [-Cc.T @ (np.eye(p) + Dc @ Ri @ Dc.T) @ Cc, -Ah.T]])
    ev = np.linalg.eigvals(H)
    return bool(np.any(np.abs(ev.real) < 1e-9 * (1.0 + np.abs(ev))))


def hinf_bisect(A, B, C, rtol: float = 1e-7) -> float:
    """H∞ norm of C(zI − A)⁻¹B (A Schur stable) by Hamiltonian bisection; an estimate.

    Raises
    ------
    ValueError
        A is not Schur stable (the H∞ norm is infinite).
    """
    rad = float(np.max(np.abs(np.linalg.eigvals(A))))
    if not rad < 1:
        raise ValueError(
            f"the open-loop plant is not stable (spectral radius {rad:.6g} ≥ 1), so its H∞ "
            "norm is infinite and the small-gain test cannot apply; use method='lyapunov' (a "
            "region of attraction)"
        )
    Ac, Bc, Cc, Dc = _tustin(A, B, C)
    n = A.shape[0]
    lo = max(
        np.linalg.norm(Dc, 2),
        np.linalg.norm(C @ np.linalg.solve(np.eye(n) - A, B), 2),
        np.linalg.norm(C @ np.linalg.solve(-np.eye(n) - A, B), 2),
    )
    hi = 2 * lo + 1e-12
    while _has_imag_eig(Ac, Bc, Cc, Dc, hi):
        lo, hi = hi, 2 * hi
    while hi - lo > rtol * hi:
        mid = (lo + hi) / 2
        if _has_imag_eig(Ac, Bc, Cc, Dc, mid):
            lo = mid
        else:
            hi = mid
    return hi


def check_kyp(A, B, C, X, gamma) -> float:
    """Re-prove ‖C(zI − A)⁻¹B‖∞ < γ from X in float64; return γ or raise CertificateError."""
    if not (isinstance(gamma, (int, float, np.floating)) and math.isfinite(gamma) and gamma > 0):
        raise CertificateError(
            f"the H∞ bound γ must be a positive number, got {gamma!r}; the "
            "certificate was tampered with: re-run certnet verify"
        )
    X = np.asarray(X, dtype=np.float64)
    if not np.allclose(X, X.T, rtol=0, atol=1e-12 * np.abs(X).max()):
        raise CertificateError("the stored KYP matrix X is not symmetric")
    X = (X + X.T) / 2
    try:
        np.linalg.cholesky(X)
    except np.linalg.LinAlgError:
        raise CertificateError("the stored KYP matrix X is not positive definite") from None
    M = np.block(
        [
            [A.T @ X @ A - X + C.T @ C, A.T @ X @ B],
            [B.T @ X @ A, B.T @ X @ B - gamma**2 * np.eye(B.shape[1])],
        ]
    )
    top = float(np.linalg.eigvalsh((M + M.T) / 2).max())
    if not top < -1e-13 * max(1.0, np.abs(M).max()):
        raise CertificateError(
            f"the bounded-real LMI fails at γ = {gamma:.9g} (largest eigenvalue {top:.3g}); "
            "the H∞ bound is not proved"
        )
    return float(gamma)


def hinf_certificate(A, B, C) -> tuple[float, np.ndarray]:
    """(γ, X): a proved upper bound γ on the H∞ norm and its KYP matrix X."""
    est = hinf_bisect(A, B, C)
    n, m = B.shape
    for bump in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
        gamma = est * (1 + bump)
        eps = bump * 1e-2 * max(1.0, np.abs(C.T @ C).max())
        try:
            X = sla.solve_discrete_are(A, B, C.T @ C + eps * np.eye(n), -(gamma**2) * np.eye(m))
            check_kyp(A, B, C, X, gamma)
        except (np.linalg.LinAlgError, ValueError, CertificateError):
            continue
        return gamma, X
    raise CertificateError(
        f"no bounded-real certificate found near the estimated H∞ norm {est:.6g}; the channel "
        "may be badly conditioned"
    )
