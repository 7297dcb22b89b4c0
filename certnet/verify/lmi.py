"""The LipSDP matrix inequality in float64 numpy, and its rigorous re-check.

Network (biases dropped: the bound holds for every bias)::

    x_k = σ_k(W_{k−1} x_{k−1} + b_{k−1}),  k = 1 … ℓ;     f(x_0) = W_ℓ x_ℓ + b_ℓ,

with σ_k slope-restricted on [α_k, β_k]. For each hidden neuron i, with Δz the change of its
pre-activation and Δw that of its output, (Δw − αΔz)(βΔz − Δw) ≥ 0. Weighting these by
multipliers t ≥ 0 and adding ‖Δf‖² − ρ‖Δx_0‖² gives, for v = [Δx_0; Δx_1; …; Δx_ℓ],

    M(ρ, t) = block-tridiagonal, with
      M_{00}   = −ρ I − 2 W_0ᵀ diag(α_1β_1 t_1) W_0
      M_{kk}   = −2 diag(t_k) − 2 W_kᵀ diag(α_{k+1}β_{k+1} t_{k+1}) W_k      (0 < k < ℓ)
      M_{ℓℓ}   = −2 diag(t_ℓ) + W_ℓᵀ W_ℓ
      M_{k−1,k} = (α_k + β_k) W_{k−1}ᵀ diag(t_k)

and M(ρ, t) ⪯ 0 implies ‖f(x) − f(y)‖ ≤ √ρ ‖x − y‖ (S-procedure; Fazlyab et al. 2019). The
−2αβ terms matter when α < 0 (a sector that is not in [0, ∞)).

For fixed t with hidden block C(t) ≺ 0, the smallest feasible ρ is the Schur complement value

    ρ*(t) = λ_max(P − Q C⁻¹ Qᵀ),   M(0, t) = [[P, Q], [Qᵀ, C]]  split after the input block,

so *any* t ≥ 0 with C(t) ≺ 0 proves a bound; :func:`certify_rho` recomputes it from t alone and
proves M(ρ, t) ⪯ 0 by a floating-point Cholesky factorisation with Rump's (2006) round-off
margin. All work is done on weights rescaled by exact powers of two (so no rounding is added);
ρ and t are stored in the user's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from certnet.errors import CertificateError
from certnet.verify.certificate import Certificate, register_checker

__all__ = [
    "SlopeNet",
    "slope_net",
    "assemble",
    "certify_rho",
    "sqrt_up",
    "lmi_certificate",
]

_U = np.finfo(np.float64).eps / 2  # unit round-off


@dataclass(frozen=True)
class SlopeNet:
    """Folded weights and per-layer slope classes: all LipSDP needs.

    Attributes
    ----------
    ws : tuple of ndarray
        W_0 … W_ℓ (float64, scalings folded in).
    alpha, beta : tuple of float
        Slope bounds of hidden layers 1 … ℓ.
    names : tuple of str
        Activation names (for messages).
    """

    ws: tuple[np.ndarray, ...]
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    names: tuple[str, ...]

    @property
    def widths(self) -> list[int]:
        return [self.ws[0].shape[1]] + [w.shape[0] for w in self.ws]

    @property
    def hidden(self) -> list[int]:
        """[n_1, …, n_ℓ]."""
        return [w.shape[0] for w in self.ws[:-1]]

    def pow2_scales(self) -> list[float]:
        """s_k = 2^round(log2 ‖W_k‖₂): exact rescaling that makes every layer O(1)."""
        out = []
        for w in self.ws:
            n = np.linalg.norm(w, 2) if w.size else 0.0
            out.append(2.0 ** round(math.log2(n)) if n > 0 else 1.0)
        return out

    def normalized(self) -> tuple[SlopeNet, list[float]]:
        """(this net with W_k / s_k, [s_k]); exact in floating point."""
        s = self.pow2_scales()
        ws = tuple(w / sk for w, sk in zip(self.ws, s, strict=True))
        return SlopeNet(ws, self.alpha, self.beta, self.names), s


def slope_net(stack, method: str) -> SlopeNet:
    """The :class:`SlopeNet` of a LayerStack; refuses activations with no slope class.

    Layers joined by a linear activation (α = β, e.g. identity) are multiplied out: the map is
    the same, and LipSDP then bounds the product exactly instead of through multipliers that
    would have to grow without bound.

    Raises
    ------
    ValueError
        An activation that is not elementwise (GroupSort), named with its position.
    """
    for k, a in enumerate(stack.activations):
        if not a.elementwise:
            raise ValueError(
                f"method {method!r} needs elementwise activations with a slope class, but "
                f"hidden layer {k + 1} is {a.name!r} (not elementwise); use method='product'"
            )
    ws = [np.asarray(w, dtype=np.float64) for w in stack.folded_weights()]
    out_w, al, be, names = [ws[0]], [], [], []
    for k, a in enumerate(stack.activations):
        if a.alpha == a.beta:  # a linear map (identity): merge the layers, exactly Lip-preserving
            out_w[-1] = a.alpha * (ws[k + 1] @ out_w[-1])
            continue
        out_w.append(ws[k + 1])
        al.append(float(a.alpha))
        be.append(float(a.beta))
        names.append(a.name)
    return SlopeNet(tuple(out_w), tuple(al), tuple(be), tuple(names))


def _offsets(net: SlopeNet) -> list[int]:
    off = [0]
    for n in net.widths[:-1]:
        off.append(off[-1] + n)
    return off  # start of block k, k = 0 … ℓ, plus the total size


def assemble(net: SlopeNet, ts: list[np.ndarray], rho: float, absolute: bool = False):
    """Dense M(ρ, t) of size n_0 + N (see the module docstring).

    With ``absolute=True`` every term is replaced by its entrywise magnitude (|W|, |t|, …): a
    bound on what is summed while forming M, used for the round-off bound of the check.
    """
    off = _offsets(net)
    m = np.zeros((off[-1], off[-1]))
    f = np.abs if absolute else (lambda a: a)
    n0 = net.widths[0]
    m[:n0, :n0] += f(-float(rho)) * np.eye(n0)
    ell = len(net.ws) - 1
    for k in range(1, ell + 1):
        t = np.asarray(ts[k - 1], dtype=np.float64)
        w = f(net.ws[k - 1])
        a, b = net.alpha[k - 1], net.beta[k - 1]
        p, q = slice(off[k - 1], off[k]), slice(off[k], off[k + 1])
        if a * b != 0.0:
            m[p, p] += w.T @ (f(-2.0 * a * b * t)[:, None] * w)
        blk = w.T * f((a + b) * t)[None, :]
        m[p, q] += blk
        m[q, p] += blk.T
        m[q, q] += np.diag(f(-2.0 * t))
    wl = f(net.ws[-1])
    last = slice(off[ell], off[ell + 1])
    m[last, last] += wl.T @ wl
    return m


def _split(net: SlopeNet, t_flat) -> list[np.ndarray]:
    t_flat = np.asarray(t_flat, dtype=np.float64).ravel()
    if t_flat.size != sum(net.hidden):
        raise CertificateError(
            f"the certificate has {t_flat.size} multipliers but the network has "
            f"{sum(net.hidden)} hidden neurons; it was made for another network"
        )
    if not (np.isfinite(t_flat).all() and (t_flat >= 0).all()):
        raise CertificateError("multipliers must be finite and >= 0; the certificate is invalid")
    return np.split(t_flat, np.cumsum(net.hidden)[:-1]) if net.hidden else []


def _gamma(n: int) -> float:
    return n * _U / (1 - n * _U)


def certify_rho(net: SlopeNet, ts) -> float:
    """Smallest ρ (in the user's units) for which M(ρ, t) ⪯ 0 is *proved* in float64.

    Parameters
    ----------
    net : SlopeNet
    ts : sequence of ndarray, or a flat ndarray
        Multipliers t_k ≥ 0 per hidden layer (user's units).

    Returns
    -------
    float
        ρ with −M(ρ, t) − δI positive definite by a successful floating-point Cholesky
        factorisation, δ covering the round-off of forming M and of the factorisation
        (Rump, BIT 2006); so M(ρ, t) ≺ 0 holds exactly and √ρ bounds Lip(f).

    Raises
    ------
    CertificateError
        Multipliers of the wrong size, negative or non-finite, or a hidden block C(t) that is not
        negative definite (t proves nothing).
    """
    if not isinstance(ts, (list, tuple)):
        ts = _split(net, ts)
    else:
        ts = _split(net, np.concatenate([np.ravel(t) for t in ts]) if ts else np.zeros(0))
    nn_, s = net.normalized()
    p2 = [1.0]
    for sk in s:
        p2.append(p2[-1] * sk * sk)  # p_k², p_0 = 1, last = P²
    big = p2[-1]
    th = [t * (p2[k + 1] / big) for k, t in enumerate(ts)]  # exact (powers of two)
    m0 = assemble(nn_, th, 0.0)
    d = m0.shape[0]
    n0 = nn_.widths[0]
    nmax = max(nn_.widths) + 3
    d_form = _gamma(nmax) * float(np.linalg.norm(assemble(nn_, th, 0.0, absolute=True)))
    delta = 4.0 * d_form + 1e-290
    c = m0[n0:, n0:] + 2.0 * delta * np.eye(d - n0)
    if d > n0:
        try:
            cf = sla.cho_factor(-c, lower=True)
        except np.linalg.LinAlgError:
            raise CertificateError(
                "the hidden block C(t) of the LipSDP matrix is not negative definite, so these "
                "multipliers prove nothing; re-certify the network"
            ) from None
        q = m0[:n0, n0:]
        schur = m0[:n0, :n0] - q @ sla.cho_solve(cf, -q.T)
    else:
        schur = m0
    schur = (schur + schur.T) / 2 + 2.0 * delta * np.eye(n0)
    rho = max(float(np.linalg.eigvalsh(schur)[-1]), 0.0) + 2.0 * delta
    rho = max(rho, 1e-300)
    for attempt in range(8):
        a = -m0
        a[np.diag_indices(n0)] += rho
        g = _gamma(d + 1)
        d_chol = g / (1 - 2 * g) * float(np.trace(a)) + d_form + 1e-290
        a[np.diag_indices(d)] -= d_chol
        try:
            np.linalg.cholesky(a)
            return rho * big
        except np.linalg.LinAlgError:
            rho += max(abs(rho) * 1e-9 * 10.0**attempt, d_chol * 10.0**attempt)
    raise CertificateError(
        "could not prove M(rho, t) negative definite in float64 (the hidden block is too close "
        "to singular); re-certify with a larger margin"
    )


def sqrt_up(rho: float) -> float:
    """√ρ rounded up (sqrt is correctly rounded, so one ulp up bounds the exact root)."""
    return float(np.nextafter(math.sqrt(rho), math.inf))


def lmi_certificate(
    stack, method: str, ts, *, solver: dict, margin: float, data: dict | None = None
) -> Certificate:
    """A ``kind="lipschitz"`` certificate proved by multipliers ``ts`` (user's units)."""
    net = slope_net(stack, method)
    flat = np.concatenate([np.ravel(t) for t in ts]) if len(ts) else np.zeros(0)
    rho = certify_rho(net, flat)
    info = {"widths": net.widths, "alpha": list(net.alpha), "beta": list(net.beta)}
    info.update(data or {})
    return Certificate(
        kind="lipschitz",
        value=sqrt_up(rho),
        method=method,
        certified=True,
        norm="l2",
        multipliers={"t": flat, "rho": rho},
        data=info,
        solver=solver,
        margin=margin,
        fingerprint=stack.fingerprint(),
    )


def _check_lmi(cert: Certificate, stack, **context) -> float:
    if stack is None:
        raise CertificateError(
            f"a {cert.method!r} certificate is re-verified against the weights: call "
            "cert.check(net) with the network it was made for"
        )
    return sqrt_up(certify_rho(slope_net(stack, cert.method), cert.array("t")))


for _m in ("lipsdp-neuron", "lipsdp-layer", "fast"):
    register_checker("lipschitz", _m)(_check_lmi)
